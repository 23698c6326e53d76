"""The small core every stage stands on: errors, hashing, store, model I/O, contract, progress."""
