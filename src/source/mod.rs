//! Sources of input objects. Sources never know about xDS: they parse and
//! validate objects and hand them to the [`crate::store::Store`].

pub mod documents;
pub mod kube;
pub mod parse;
pub mod yaml_dir;
