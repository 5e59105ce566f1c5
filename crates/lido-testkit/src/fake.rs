//! A scriptable fake [`lido_core::Manager`] for testing the pool core's own
//! logic (and anything built on it that needs no real database).
