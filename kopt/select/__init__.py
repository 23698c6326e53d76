"""Selection: turn bench + quality records into a decision (Pareto frontier, one winner per provider,
the reason every other variant lost), and split a build matrix into shards."""
