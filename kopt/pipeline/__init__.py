"""`kopt build`: a recipe run end to end (acquire, reference, variants, bench, quality, select,
report, compare, publish), every step cached by content."""
