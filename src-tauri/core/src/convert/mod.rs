//! Pure conversions from Graph's shapes to the destinations' shapes. No I/O here.

pub mod flags;
pub mod folder_name;
