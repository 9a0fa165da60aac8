//! Where records go. Today one sink: [`postgres`], a shard's database written by
//! binary COPY.

pub mod postgres;
