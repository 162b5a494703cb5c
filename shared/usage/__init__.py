"""Usage aggregation: daily rollups of usage records (pure functions, no storage)."""
