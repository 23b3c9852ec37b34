"""The offline mini world."""
