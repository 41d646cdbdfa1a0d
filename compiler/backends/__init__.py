"""Backends: each turns the IR into one kind of output and depends on no other backend."""
