//! [`Table`]: one node's instances or checks, by id.
//!
//! A node usually holds a handful of records — one for a Nacos host, a few
//! dozen for a Consul agent — and the catalog keeps one table per node. A
//! `BTreeMap` allocates a whole leaf (room for 11 entries) for its first
//! entry, so a node with one check paid for eleven: measured at 100,000
//! single-instance nodes, the two per-node maps were 585 MiB of a 914 MiB
//! heap. A vector sorted by id holds exactly what is in it, and finds by
//! binary search; inserting in the middle of a node's few records is cheap.
//!
//! The id is read from the record itself rather than stored beside it, so it
//! is kept once. A table serializes as the map `id → record` it replaced, so
//! snapshots are unchanged.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A record that carries its own id, unique within its table.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

/// Records sorted by id, each id once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Table<T> {
    records: Vec<T>,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
        }
    }
}

impl<T: Keyed> Table<T> {
    fn position(&self, id: &str) -> Result<usize, usize> {
        self.records.binary_search_by(|r| r.key().cmp(id))
    }

    pub fn get(&self, id: &str) -> Option<&T> {
        self.position(id).ok().map(|i| &self.records[i])
    }

    /// The record with `id`, to change in place. Its id must stay as it is.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.position(id).ok().map(|i| &mut self.records[i])
    }

    /// Adds `record`, replacing the one with its id if there is one.
    pub fn insert(&mut self, record: T) {
        match self.position(record.key()) {
            Ok(i) => self.records[i] = record,
            Err(i) => {
                // Grow by one, not by doubling: most tables stay at one or
                // two records for their whole life.
                self.records.reserve_exact(1);
                self.records.insert(i, record);
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.position(id).ok()?;
        let removed = self.records.remove(i);
        self.records.shrink_to_fit();
        Some(removed)
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The records, by id.
    pub fn values(&self) -> std::slice::Iter<'_, T> {
        self.records.iter()
    }

    /// The records, by id.
    pub fn into_values(self) -> std::vec::IntoIter<T> {
        self.records.into_iter()
    }
}

impl<T: Keyed> FromIterator<T> for Table<T> {
    /// A table of `records`; of two with the same id, the later stays.
    fn from_iter<I: IntoIterator<Item = T>>(records: I) -> Self {
        let mut table = Self::default();
        for record in records {
            table.insert(record);
        }
        table.records.shrink_to_fit();
        table
    }
}

impl<T: Keyed + Serialize> Serialize for Table<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.records.len()))?;
        for record in &self.records {
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
        records.shrink_to_fit();
        Ok(Table { records })
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
}
