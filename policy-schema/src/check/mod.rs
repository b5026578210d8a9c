//! Cross-checks over the whole raw policy: what no single value can tell. Each check skips
//! entries that already failed to parse, so one mistake yields one message.

mod authorities;
mod entities;
mod ownership;
mod resolve;
mod rules;
mod shadow;

use crate::raw::RawPolicy;
use crate::report::Report;
pub(crate) use resolve::Resolver;

pub(crate) fn check(rep: &mut Report, raw: &RawPolicy, resolver: &Resolver) {
    ownership::check_defaults(rep, raw);
    ownership::check_ownership(rep, raw);
    entities::check(rep, raw);
    authorities::check(rep, raw);
    let sides = resolve::rule_sides(raw, resolver);
    rules::check(rep, raw, resolver, &sides);
    shadow::check(rep, raw, &sides);
    rules::check_coverage(rep, raw, &sides);
}
