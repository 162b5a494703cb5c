"""Budgets and alerts (DESIGN §11): the rules, the tick, webhook signing, address safety
and delivery."""
