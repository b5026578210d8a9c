//! `xfrm-agent run -c FILE --key KEY [--netns NAME] [--metrics ADDR:PORT] [--flush-on-exit]`:
//! the daemon (see [`crate::daemon`]).

use std::process::ExitCode;
use std::time::Duration;

use crate::daemon::{self, Options};

pub fn run(args: &super::RunArgs) -> anyhow::Result<ExitCode> {
    let o = Options {
        flush_on_exit: args.flush_on_exit,
        metrics: args.metrics,
        resync: Duration::from_secs(args.resync),
        debounce: Duration::from_millis(args.debounce_ms),
        announce: args.announce_cluster_addresses,
        first_packets: args.first_packets,
    };
    daemon::run(&args.policy.files(), args.netns.netns.as_deref(), &o)
}
