//! Radio-state models (stub: to be written).
