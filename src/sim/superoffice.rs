//! Simulator placeholder; the wire-faithful server lands with the vendor client.
