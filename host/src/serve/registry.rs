//! The connectors in service, by type id: the active version, the one
//! before it (kept loaded, so a rollback is a switch, not a load), and a
//! canary when one runs.
//!
//! The dispatcher asks which version makes each batch ([`Registry::pick`])
//! and keeps that `Arc` for the call. A switch replaces the `Arc`s of one
//! slot under a write lock held for the time of a few pointer moves: calls
//! that started finish on the version they started with, the next ones take
//! the new one, and nothing waits for a call to end.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::canary::{CanaryPolicy, CanaryRun};
use crate::runtime::Destination;

/// The versions of one connector type in service.
#[derive(Clone)]
struct Slot {
    active: Arc<dyn Destination>,
    standby: Option<Arc<dyn Destination>>,
    canary: Option<Arc<CanaryRun>>,
}

/// Loaded connectors, by type id.
#[derive(Default)]
pub struct Registry {
    slots: RwLock<BTreeMap<String, Slot>>,
}

/// The version picked for one batch.
pub struct Picked {
    pub destination: Arc<dyn Destination>,
    /// The canary running for the type, if any: outcomes are counted on it.
    pub canary: Option<Arc<CanaryRun>>,
    /// Whether `destination` is the canary's candidate.
    pub is_candidate: bool,
}

/// A slot as the API shows it.
pub struct SlotView {
    pub active: Arc<dyn Destination>,
    pub standby: Option<Arc<dyn Destination>>,
    pub canary: Option<Arc<CanaryRun>>,
}

/// Why a rollback could not happen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RollbackError {
    #[error("no connector of type `{0}` is loaded")]
    UnknownType(String),
    #[error("connector `{0}` has no previous version loaded to return to")]
    NoPrevious(String),
}

/// A completed switch: which version served before, which serves now.
pub struct Switched {
    pub from: Arc<dyn Destination>,
    pub to: Arc<dyn Destination>,
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Slot>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connector (a fixed set, built in code); of two with one type
    /// id, the higher version stays.
    pub fn insert(&self, connector: Arc<dyn Destination>) {
        let mut slots = self.write();
        let type_id = connector.info().type_id.clone();
        let keep_existing = slots.get(&type_id).is_some_and(|slot| {
            version_order(&slot.active.info().version, &connector.info().version)
                != std::cmp::Ordering::Less
        });
        if !keep_existing {
            slots.insert(
                type_id,
                Slot {
                    active: connector,
                    standby: None,
                    canary: None,
                },
            );
        }
    }

    /// Puts a type in service as it was (at start, from the store).
    pub fn restore(&self, active: Arc<dyn Destination>, standby: Option<Arc<dyn Destination>>) {
        self.write().insert(
            active.info().type_id.clone(),
            Slot {
                active,
                standby,
                canary: None,
            },
        );
    }

    /// Makes `connector` the active version of its type; the version it
    /// replaces becomes the standby. Returns that version, if any.
    pub fn activate(&self, connector: Arc<dyn Destination>) -> Option<Arc<dyn Destination>> {
        let mut slots = self.write();
        let type_id = connector.info().type_id.clone();
        match slots.get_mut(&type_id) {
            Some(slot) => {
                let previous = std::mem::replace(&mut slot.active, connector);
                slot.standby = Some(previous.clone());
                slot.canary = None;
                Some(previous)
            }
            None => {
                slots.insert(
                    type_id,
                    Slot {
                        active: connector,
                        standby: None,
                        canary: None,
                    },
                );
                None
            }
        }
    }

    /// Starts a canary of `candidate` beside the active version of its type.
    pub fn start_canary(
        &self,
        candidate: Arc<dyn Destination>,
        policy: CanaryPolicy,
        now_ms: i64,
    ) -> Result<Arc<CanaryRun>, RollbackError> {
        let mut slots = self.write();
        let type_id = candidate.info().type_id.clone();
        let slot = slots
            .get_mut(&type_id)
            .ok_or(RollbackError::UnknownType(type_id))?;
        let run = Arc::new(CanaryRun::new(candidate, policy, now_ms));
        slot.canary = Some(run.clone());
        Ok(run)
    }

    /// Ends the canary of `type_id`, if `run` is still the one running:
    /// promoted, its candidate becomes active (the old active the standby);
    /// otherwise it is dropped. Returns the switch made.
    pub fn end_canary(
        &self,
        type_id: &str,
        run: &Arc<CanaryRun>,
        promote: bool,
    ) -> Option<Switched> {
        let mut slots = self.write();
        let slot = slots.get_mut(type_id)?;
        if !slot.canary.as_ref().is_some_and(|c| Arc::ptr_eq(c, run)) {
            return None;
        }
        slot.canary = None;
        if promote {
            let previous = std::mem::replace(&mut slot.active, run.candidate.clone());
            slot.standby = Some(previous.clone());
            Some(Switched {
                from: previous,
                to: run.candidate.clone(),
            })
        } else {
            Some(Switched {
                from: run.candidate.clone(),
                to: slot.active.clone(),
            })
        }
    }

    /// Returns to the previous version: a running canary is dropped; else
    /// the active and standby versions trade places.
    pub fn rollback(&self, type_id: &str) -> Result<Switched, RollbackError> {
        let mut slots = self.write();
        let slot = slots
            .get_mut(type_id)
            .ok_or_else(|| RollbackError::UnknownType(type_id.to_string()))?;
        if let Some(run) = slot.canary.take() {
            return Ok(Switched {
                from: run.candidate.clone(),
                to: slot.active.clone(),
            });
        }
        let standby = slot
            .standby
            .take()
            .ok_or_else(|| RollbackError::NoPrevious(type_id.to_string()))?;
        let from = std::mem::replace(&mut slot.active, standby.clone());
        slot.standby = Some(from.clone());
        Ok(Switched { from, to: standby })
    }

    /// The active version.
    pub fn get(&self, type_id: &str) -> Option<Arc<dyn Destination>> {
        self.read().get(type_id).map(|slot| slot.active.clone())
    }

    /// The version that makes the next batch: during a canary, its share of
    /// first attempts goes to the candidate; a retry always goes to the
    /// active version (a delivery the candidate failed is retried on the
    /// version it is compared with).
    pub fn pick(&self, type_id: &str, first_attempt: bool) -> Option<Picked> {
        let slots = self.read();
        let slot = slots.get(type_id)?;
        let Some(run) = &slot.canary else {
            return Some(Picked {
                destination: slot.active.clone(),
                canary: None,
                is_candidate: false,
            });
        };
        let to_candidate = first_attempt && run.route_to_candidate();
        Some(Picked {
            destination: if to_candidate {
                run.candidate.clone()
            } else {
                slot.active.clone()
            },
            canary: Some(run.clone()),
            is_candidate: to_candidate,
        })
    }

    pub fn view(&self, type_id: &str) -> Option<SlotView> {
        self.read().get(type_id).map(|slot| SlotView {
            active: slot.active.clone(),
            standby: slot.standby.clone(),
            canary: slot.canary.clone(),
        })
    }

    /// Every running canary, with its type id.
    pub fn canaries(&self) -> Vec<(String, Arc<CanaryRun>)> {
        self.read()
            .iter()
            .filter_map(|(type_id, slot)| slot.canary.clone().map(|run| (type_id.clone(), run)))
            .collect()
    }

    pub fn type_ids(&self) -> Vec<String> {
        self.read().keys().cloned().collect()
    }
}

impl crate::integrations::ConnectorLookup for Registry {
    fn connector(&self, type_id: &str) -> Option<Arc<dyn Destination>> {
        self.get(type_id)
    }

    fn type_ids(&self) -> Vec<String> {
        Registry::type_ids(self)
    }
}

/// Semver order of two versions; a version that does not parse sorts by
/// its numeric dot-separated parts.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => numeric_parts(a).cmp(&numeric_parts(b)),
    }
}

fn numeric_parts(version: &str) -> Vec<u64> {
    version
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;
    use crate::runtime::testing::NullDestination;

    fn null(version: &str) -> Arc<dyn Destination> {
        Arc::new(NullDestination::new("dd", version))
    }

    fn version_of(d: &Arc<dyn Destination>) -> String {
        d.info().version.clone()
    }

    #[test]
    fn versions_compare_as_semver() {
        assert_eq!(version_order("1.10.0", "1.9.3"), Ordering::Greater);
        assert_eq!(version_order("1.0.0-rc.1", "1.0.0"), Ordering::Less);
        assert_eq!(version_order("0.2.0", "0.2.0"), Ordering::Equal);
        assert_eq!(version_order("2", "1.9"), Ordering::Greater);
    }

    #[test]
    fn activation_keeps_the_previous_version_for_a_rollback() {
        let registry = Registry::default();
        assert!(registry.activate(null("0.1.0")).is_none());
        assert_eq!(
            registry.rollback("dd").err(),
            Some(RollbackError::NoPrevious("dd".into()))
        );
        let before = registry.pick("dd", true).unwrap().destination;
        let replaced = registry.activate(null("0.2.0")).unwrap();
        assert_eq!(version_of(&replaced), "0.1.0");
        // A call that picked before the switch keeps its version.
        assert_eq!(version_of(&before), "0.1.0");
        assert_eq!(version_of(&registry.get("dd").unwrap()), "0.2.0");
        let back = registry.rollback("dd").unwrap();
        assert_eq!(
            (version_of(&back.from), version_of(&back.to)),
            ("0.2.0".into(), "0.1.0".into())
        );
        assert_eq!(version_of(&registry.get("dd").unwrap()), "0.1.0");
        // And forth again: the two trade places.
        registry.rollback("dd").unwrap();
        assert_eq!(version_of(&registry.get("dd").unwrap()), "0.2.0");
        assert_eq!(
            registry.rollback("nope").err(),
            Some(RollbackError::UnknownType("nope".into()))
        );
    }

    #[test]
    fn a_canary_takes_its_share_of_first_attempts_only() {
        let registry = Registry::default();
        registry.activate(null("0.1.0"));
        let policy = CanaryPolicy {
            percent: 50,
            ..CanaryPolicy::default()
        };
        let run = registry.start_canary(null("0.2.0"), policy, 0).unwrap();
        let firsts: Vec<bool> = (0..10)
            .map(|_| registry.pick("dd", true).unwrap().is_candidate)
            .collect();
        assert_eq!(firsts.iter().filter(|c| **c).count(), 5);
        assert!((0..10).all(|_| !registry.pick("dd", false).unwrap().is_candidate));
        // Dropped: the active version never changed.
        let switched = registry.end_canary("dd", &run, false).unwrap();
        assert_eq!(version_of(&switched.from), "0.2.0");
        assert_eq!(version_of(&registry.get("dd").unwrap()), "0.1.0");
        assert!(
            registry.end_canary("dd", &run, true).is_none(),
            "already ended"
        );
        // Promoted: the candidate becomes active, the old one the standby.
        let run = registry
            .start_canary(null("0.3.0"), CanaryPolicy::default(), 0)
            .unwrap();
        registry.end_canary("dd", &run, true).unwrap();
        assert_eq!(version_of(&registry.get("dd").unwrap()), "0.3.0");
        assert_eq!(
            version_of(&registry.view("dd").unwrap().standby.unwrap()),
            "0.1.0"
        );
    }
}
