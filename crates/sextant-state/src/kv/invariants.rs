//! What must hold of the key space after any sequence of commands; checked
//! on every decoded snapshot and after every step of the property tests.

use super::{KvStore, Version};

impl KvStore {
    pub(crate) fn check_invariants(&self) -> Result<(), String> {
        if self.compacted_revision > self.revision {
            return Err(format!(
                "compacted revision {} is above revision {}",
                self.compacted_revision, self.revision
            ));
        }
        if self.last_change_revision > self.revision {
            return Err(format!(
                "last change {} is above revision {}",
                self.last_change_revision, self.revision
            ));
        }
        for (key, history) in &self.history {
            if history.is_empty() {
                return Err(format!("key {key:?} has an empty history"));
            }
            let mut before: Option<&Version> = None;
            for version in history {
                if version.revision() > self.revision {
                    return Err(format!("key {key:?} has a version from the future"));
                }
                if let Some(b) = before {
                    if version.revision() < b.revision() {
                        return Err(format!("key {key:?} has revisions out of order"));
                    }
                }
                if let Version::Live(kv) = version {
                    if kv.key != *key {
                        return Err(format!("key {key:?} holds a version of {:?}", kv.key));
                    }
                    if kv.version == 0 || kv.create_revision > kv.mod_revision {
                        return Err(format!("key {key:?} has a malformed version {kv:?}"));
                    }
                    // Only the first entry may lack its predecessor (compacted).
                    let expected = match before {
                        None => None,
                        Some(Version::Live(prev)) => {
                            Some((prev.create_revision, prev.version.saturating_add(1)))
                        }
                        Some(Version::Deleted { .. }) => Some((kv.mod_revision, 1)),
                    };
                    if expected.is_some_and(|e| e != (kv.create_revision, kv.version)) {
                        return Err(format!("key {key:?} has a version out of sequence {kv:?}"));
                    }
                } else if matches!(before, Some(Version::Deleted { .. })) {
                    return Err(format!("key {key:?} has two tombstones in a row"));
                }
                before = Some(version);
            }
        }
        Ok(())
    }
}
