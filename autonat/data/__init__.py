"""Datasets: the built-in demo digits, image folders, tokenisation and the token cache."""
