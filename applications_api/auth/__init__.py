"""Users, their API tokens, and who may do what."""
