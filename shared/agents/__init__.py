"""The agents: triage, data and optimization, and the step runner between them."""
