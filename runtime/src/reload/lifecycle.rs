//! The plugin lifecycle: Registered → Loaded → Unloaded (and back), with
//! every transition checked against one table.
//!
//! A plugin file found in the directory is *Registered*; once compiled and
//! `init`ed it is *Loaded* and may serve; after `destroy` it is *Unloaded*.
//! An unloaded plugin may be registered or loaded again (a reload). Where an
//! operator would expect it, repeating an operation is harmless: unloading
//! twice, or registering what is registered. Anything else is an error.

use std::fmt;

/// Where a plugin is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Found, not yet compiled or initialised.
    Registered,
    /// Initialised; may serve queries.
    Loaded,
    /// Destroyed; serves nothing.
    Unloaded,
}

/// What is asked of a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Register the file.
    Register,
    /// Compile and `init`.
    Load,
    /// `destroy`.
    Unload,
}

/// An event that the table does not allow in a state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {event:?} a plugin that is {from:?}")]
pub struct InvalidTransition {
    /// The state it was in.
    pub from: State,
    /// What was asked.
    pub event: Event,
}

/// The one transition table.
const TABLE: &[(State, Event, State)] = &[
    (State::Registered, Event::Register, State::Registered),
    (State::Registered, Event::Load, State::Loaded),
    (State::Registered, Event::Unload, State::Unloaded),
    (State::Loaded, Event::Unload, State::Unloaded),
    (State::Unloaded, Event::Register, State::Registered),
    (State::Unloaded, Event::Load, State::Loaded),
    (State::Unloaded, Event::Unload, State::Unloaded),
];

impl State {
    /// The state after `event`, or why it is not allowed.
    pub fn on(self, event: Event) -> Result<State, InvalidTransition> {
        TABLE
            .iter()
            .find(|(from, ev, _)| *from == self && *ev == event)
            .map(|(_, _, to)| *to)
            .ok_or(InvalidTransition { from: self, event })
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Registered => "registered",
            State::Loaded => "loaded",
            State::Unloaded => "unloaded",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        use Event::*;
        use State::*;
        assert_eq!(Registered.on(Load), Ok(Loaded));
        assert_eq!(Loaded.on(Unload), Ok(Unloaded));
        assert_eq!(
            Unloaded.on(Unload),
            Ok(Unloaded),
            "unloading twice is harmless"
        );
        assert_eq!(Unloaded.on(Load), Ok(Loaded), "a reload");
        assert_eq!(Unloaded.on(Register), Ok(Registered));
        assert_eq!(
            Loaded.on(Load),
            Err(InvalidTransition {
                from: Loaded,
                event: Load
            }),
            "no double init"
        );
        assert_eq!(
            Loaded.on(Register),
            Err(InvalidTransition {
                from: Loaded,
                event: Register
            })
        );
    }

    /// Every state and event against a list written from the design
    /// (ARCHITECTURE.md: Registered → Loaded → Unloaded, reload is load
    /// again, repeating a harmless step is allowed), not read from `TABLE`.
    #[test]
    fn every_transition_matches_the_design() {
        use Event::*;
        use State::*;
        let design = [
            (Registered, Register, Some(Registered)),
            (Registered, Load, Some(Loaded)),
            (Registered, Unload, Some(Unloaded)),
            (Loaded, Register, None),
            (Loaded, Load, None),
            (Loaded, Unload, Some(Unloaded)),
            (Unloaded, Register, Some(Registered)),
            (Unloaded, Load, Some(Loaded)),
            (Unloaded, Unload, Some(Unloaded)),
        ];
        for (from, event, to) in design {
            let want = to.ok_or(InvalidTransition { from, event });
            assert_eq!(from.on(event), want, "{from:?} on {event:?}");
        }
        assert_eq!(
            TABLE.len(),
            design.iter().filter(|(_, _, to)| to.is_some()).count(),
            "the table allows nothing the design does not"
        );
    }
}
