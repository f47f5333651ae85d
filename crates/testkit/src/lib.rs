//! credsync's development kit, kept out of the operator crate so nothing here can reach the
//! image: vendor simulators written from the vendor documents ([`sim`]), a real local control
//! plane (etcd + kube-apiserver, [`control_plane`]) for tests, the demo and benchmarks.

pub mod control_plane;
pub mod objects;
pub mod sim;

pub use control_plane::{ControlPlane, DevError};
