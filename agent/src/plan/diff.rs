//! `diff(desired, observed) -> Vec<Op>`: minimal, safely ordered kernel writes.
