//! Permission bits of topics and brokers (`PermName`).

/// New topics may be created from this one (only meaningful on `TBW102`).
pub const INHERIT: i32 = 1;
/// Writable.
pub const WRITE: i32 = 2;
/// Readable.
pub const READ: i32 = 4;
/// Priority (unused by the broker).
pub const PRIORITY: i32 = 8;
/// True if the bits allow reading.
pub fn is_readable(p: i32) -> bool {
    p & READ == READ
}
/// True if the bits allow writing.
pub fn is_writeable(p: i32) -> bool {
    p & WRITE == WRITE
}
/// True if the bits allow creating topics from this one.
pub fn is_inherited(p: i32) -> bool {
    p & INHERIT == INHERIT
}
