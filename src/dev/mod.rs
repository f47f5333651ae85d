//! Local development pieces: a real control plane (etcd + kube-apiserver) for tests, the demo
//! and benchmarks.

pub mod control_plane;

pub use control_plane::{ControlPlane, DevError};
