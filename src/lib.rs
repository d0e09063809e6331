//! faust
