//! Pair tests
