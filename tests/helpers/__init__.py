"""Shared test support: synthetic audio, fakes and drivers."""
