//! Configuration file model (TOML).
