//! How servers find each other and form (or join) a cluster.

pub mod bootstrap;
pub mod discovery;
