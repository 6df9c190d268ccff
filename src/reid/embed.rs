//! Embedding stage (work in progress).
