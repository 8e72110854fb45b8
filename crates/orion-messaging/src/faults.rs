//! Faults a consumer plays on request, for the fault suite: a message carrying the
//! `x-orion-fault` header makes its handler panic (`panic`) or the whole process abort
//! (`crash`), so that tests prove with a real panic and a real crash that such a message is
//! counted and parked while the rest keeps flowing. Honoured only by a consumer whose settings
//! turn fault injection on (`ORION_FAULT_INJECTION`, off by default); otherwise the header is
//! an ordinary header.

use lapin::BasicProperties;
use lapin::types::AMQPValue;

/// The header naming the fault to play.
pub const FAULT_HEADER: &str = "x-orion-fault";

/// A fault a message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InjectedFault {
    /// The handler panics.
    Panic,
    /// The process aborts, as on a segfault or an out-of-memory kill: no unwinding, no ack.
    Crash,
}

impl InjectedFault {
    pub(crate) fn requested_by(properties: &BasicProperties) -> Option<Self> {
        let name = match properties.headers().as_ref()?.inner().get(FAULT_HEADER)? {
            AMQPValue::LongString(text) => text.to_string(),
            AMQPValue::ShortString(text) => text.to_string(),
            _ => return None,
        };
        match name.as_str() {
            "panic" => Some(Self::Panic),
            "crash" => Some(Self::Crash),
            _ => None,
        }
    }

    /// Plays the fault where the handler would run.
    pub(crate) fn strike(self) {
        match self {
            Self::Panic => panic!("injected fault: the handler panics"),
            Self::Crash => {
                tracing::error!("injected fault: the process aborts while handling a message");
                std::process::abort();
            }
        }
    }
}
