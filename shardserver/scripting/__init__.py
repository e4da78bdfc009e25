"""Lua scripting: the environment Redis gives scripts, and what runs them."""
