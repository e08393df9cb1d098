//! [`Table`]: one node's instances or checks, by id.
//!
//! A node usually holds a handful of records — one for a Nacos host, a few
//! dozen for a Consul agent — and the catalog keeps one table per node. A
//! `BTreeMap` allocates a whole leaf (room for 11 entries) for its first
//! entry, so a node with one check paid for eleven: measured at 100,000
//! single-instance nodes, the two per-node maps were 585 MiB of a 914 MiB
//! heap. A small table is therefore a vector sorted by id, holding exactly
//! what is in it, found by binary search; the id is read from the record
//! itself, so it is kept once. A node can also hold very many records (every
//! instance of the native API is on one node, `sextant-native`), where
//! inserting into the middle of a vector moves half of it each time: past
//! [`SMALL`] records a table is a map again. A table serializes as the map
//! `id → record` it replaced, so snapshots are unchanged.

use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Most records a table keeps in a vector; one more makes it a map.
const SMALL: usize = 32;
/// A map shrunk to this many records becomes a vector again (not at
/// [`SMALL`], so that a table at the edge does not switch on every change).
const SHRINK_AT: usize = SMALL / 2;

/// A record that carries its own id, unique within its table.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

/// Records by id, each id once.
#[derive(Clone, Debug)]
pub(crate) enum Table<T> {
    /// Sorted by id, with no spare capacity to speak of.
    Small(Vec<T>),
    Large(BTreeMap<String, T>),
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Table::Small(Vec::new())
    }
}

/// Equal when they hold the same records, whichever shape each has.
impl<T: Keyed + PartialEq> PartialEq for Table<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.values().eq(other.values())
    }
}

impl<T: Keyed + Eq> Eq for Table<T> {}

impl<T: Keyed> Table<T> {
    fn position(records: &[T], id: &str) -> Result<usize, usize> {
        records.binary_search_by(|r| r.key().cmp(id))
    }

    pub fn len(&self) -> usize {
        match self {
            Table::Small(records) => records.len(),
            Table::Large(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        match self {
            Table::Small(records) => Self::position(records, id).ok().map(|i| &records[i]),
            Table::Large(map) => map.get(id),
        }
    }

    /// The record with `id`, to change in place. Its id must stay as it is.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        match self {
            Table::Small(records) => Self::position(records, id).ok().map(|i| &mut records[i]),
            Table::Large(map) => map.get_mut(id),
        }
    }

    /// Adds `record`, replacing the one with its id if there is one.
    pub fn insert(&mut self, record: T) {
        match self {
            Table::Small(records) => match Self::position(records, record.key()) {
                Ok(i) => records[i] = record,
                Err(i) if records.len() < SMALL => {
                    // Grow by one, not by doubling: most tables stay at one
                    // or two records for their whole life.
                    records.reserve_exact(1);
                    records.insert(i, record);
                }
                Err(_) => {
                    let mut map: BTreeMap<String, T> = std::mem::take(records)
                        .into_iter()
                        .map(|r| (r.key().to_owned(), r))
                        .collect();
                    map.insert(record.key().to_owned(), record);
                    *self = Table::Large(map);
                }
            },
            Table::Large(map) => {
                map.insert(record.key().to_owned(), record);
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        match self {
            Table::Small(records) => {
                let i = Self::position(records, id).ok()?;
                let removed = records.remove(i);
                records.shrink_to_fit();
                Some(removed)
            }
            Table::Large(map) => {
                let removed = map.remove(id)?;
                if map.len() <= SHRINK_AT {
                    // A map yields its records by id: the vector is sorted.
                    let records = std::mem::take(map).into_values().collect();
                    *self = Table::Small(records);
                }
                Some(removed)
            }
        }
    }

    /// The records, by id.
    pub fn values(&self) -> Values<'_, T> {
        match self {
            Table::Small(records) => Values::Small(records.iter()),
            Table::Large(map) => Values::Large(map.values()),
        }
    }

    /// The records, by id.
    pub fn into_values(self) -> IntoValues<T> {
        match self {
            Table::Small(records) => IntoValues::Small(records.into_iter()),
            Table::Large(map) => IntoValues::Large(map.into_values()),
        }
    }

    /// A table of records already sorted by id, each id once.
    fn from_sorted(records: Vec<T>) -> Self {
        if records.len() <= SMALL {
            let mut records = records;
            records.shrink_to_fit();
            Table::Small(records)
        } else {
            Table::Large(
                records
                    .into_iter()
                    .map(|r| (r.key().to_owned(), r))
                    .collect(),
            )
        }
    }
}

/// The records of a table, by id.
pub(crate) enum Values<'a, T> {
    Small(std::slice::Iter<'a, T>),
    Large(btree_map::Values<'a, String, T>),
}

impl<'a, T> Iterator for Values<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match self {
            Values::Small(records) => records.next(),
            Values::Large(records) => records.next(),
        }
    }
}

/// The records of a table, by id, taken out of it.
pub(crate) enum IntoValues<T> {
    Small(std::vec::IntoIter<T>),
    Large(btree_map::IntoValues<String, T>),
}

impl<T> Iterator for IntoValues<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self {
            IntoValues::Small(records) => records.next(),
            IntoValues::Large(records) => records.next(),
        }
    }
}

impl<T: Keyed> FromIterator<T> for Table<T> {
    /// A table of `records`; of two with the same id, the later stays.
    fn from_iter<I: IntoIterator<Item = T>>(records: I) -> Self {
        let by_id: BTreeMap<String, T> = records
            .into_iter()
            .map(|r| (r.key().to_owned(), r))
            .collect();
        Self::from_sorted(by_id.into_values().collect())
    }
}

impl<T: Keyed + Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for record in self.values() {
            map.serialize_entry(record.key(), record)?;
        }
        map.end()
    }
}

impl<'de, T: Keyed + Deserialize<'de>> Deserialize<'de> for Table<T> {
    /// Refuses a map whose ids are out of order, repeated, or differ from
    /// their records' own: no `BTreeMap` could have written it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TableVisitor(PhantomData))
    }
}

struct TableVisitor<T>(PhantomData<T>);

impl<'de, T: Keyed + Deserialize<'de>> Visitor<'de> for TableVisitor<T> {
    type Value = Table<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from id to record, by id")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        // A length from the input is a claim, not a fact: cap what it reserves.
        let mut records: Vec<T> = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some((id, record)) = map.next_entry::<String, T>()? {
            if record.key() != id {
                return Err(A::Error::custom(format!(
                    "record {id:?} is stored as {:?}",
                    record.key()
                )));
            }
            if records.last().is_some_and(|last| last.key() >= id.as_str()) {
                return Err(A::Error::custom(format!("id {id:?} out of order")));
            }
            records.push(record);
        }
        Ok(Table::from_sorted(records))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Record {
        id: String,
        value: u32,
    }

    impl Keyed for Record {
        fn key(&self) -> &str {
            &self.id
        }
    }

    fn record(id: &str, value: u32) -> Record {
        Record {
            id: id.into(),
            value,
        }
    }

    #[test]
    fn keeps_records_sorted_by_id_and_each_id_once() {
        let mut table: Table<Record> = [record("b", 1), record("a", 2)].into_iter().collect();
        table.insert(record("c", 3));
        table.insert(record("b", 4));
        let ids: Vec<(&str, u32)> = table.values().map(|r| (r.key(), r.value)).collect();
        assert_eq!(ids, vec![("a", 2), ("b", 4), ("c", 3)]);
        assert_eq!(table.get("b").map(|r| r.value), Some(4));
        assert_eq!(table.remove("a").map(|r| r.value), Some(2));
        assert!(table.remove("a").is_none());
        assert!(table.get("z").is_none());
    }

    #[test]
    fn encodes_exactly_as_the_map_it_replaced() {
        let table: Table<Record> = [record("x", 1), record("y", 2)].into_iter().collect();
        let map: BTreeMap<String, Record> =
            table.values().map(|r| (r.id.clone(), r.clone())).collect();
        let bytes = bincode::serialize(&table).expect("encodes");
        assert_eq!(bytes, bincode::serialize(&map).expect("encodes"));
        let decoded: Table<Record> = bincode::deserialize(&bytes).expect("decodes");
        assert_eq!(decoded, table);
    }

    #[test]
    fn refuses_maps_no_table_could_have_written() {
        let mismatched: BTreeMap<String, Record> = [("x".to_owned(), record("y", 1))].into();
        let bytes = bincode::serialize(&mismatched).expect("encodes");
        assert!(bincode::deserialize::<Table<Record>>(&bytes).is_err());
        let unordered = vec![
            ("b".to_owned(), record("b", 1)),
            ("a".to_owned(), record("a", 2)),
        ];
        let mut bytes = bincode::serialize(&2u64).expect("encodes");
        for entry in &unordered {
            bytes.extend(bincode::serialize(entry).expect("encodes"));
        }
        assert!(bincode::deserialize::<Table<Record>>(&bytes).is_err());
    }

    #[test]
    fn a_large_table_is_a_map_and_a_small_one_again_a_vector() {
        // Inserted out of order, as ids arrive.
        let ids: Vec<String> = (0..SMALL * 3)
            .map(|i| format!("id{:04}", (i * 37) % (SMALL * 3)))
            .collect();
        let mut table = Table::default();
        for (n, id) in ids.iter().enumerate() {
            table.insert(record(id, n as u32));
        }
        assert!(matches!(table, Table::Large(_)));
        assert_eq!(table.len(), SMALL * 3);
        let sorted: Vec<&str> = table.values().map(Keyed::key).collect();
        let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(table.get("id0037").map(|r| r.value), Some(1));

        // The same records built the other way compare equal, and encode alike.
        let rebuilt: Table<Record> = table.values().cloned().collect();
        assert_eq!(rebuilt, table);
        let bytes = bincode::serialize(&table).expect("encodes");
        assert_eq!(bytes, bincode::serialize(&rebuilt).expect("encodes"));
        assert_eq!(
            bincode::deserialize::<Table<Record>>(&bytes).expect("decodes"),
            table
        );

        for id in &ids[..ids.len() - SHRINK_AT] {
            assert!(table.remove(id).is_some());
        }
        assert!(matches!(table, Table::Small(_)));
        assert_eq!(table.len(), SHRINK_AT);
        let left: Vec<&str> = table.values().map(Keyed::key).collect();
        let mut expected: Vec<&str> = ids[ids.len() - SHRINK_AT..]
            .iter()
            .map(String::as_str)
            .collect();
        expected.sort_unstable();
        assert_eq!(left, expected);
    }
}
