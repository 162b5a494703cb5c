"""Teams (DESIGN §9): roles and what each may do, API keys, and the rules of membership."""
