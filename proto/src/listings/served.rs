//! Listings' server with groups sent as bytes encoded beforehand (ADR 25).
//!
//! `build.rs` generates the listings server a second time with
//! `selfhelp.listings.v1.Group` mapped to [`EncodedGroup`]: the answers that
//! carry groups (`SearchGroupsResponse`, the review queue, proposals) are
//! generated again around it, and every other message is the published one.
//! On the wire nothing changes, so clients decode the published `Group`.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::listings::v1::Group;

include!(concat!(env!("OUT_DIR"), "/served/selfhelp.listings.v1.rs"));

/// How many runs of fields one answer is put together from.
const RUNS: usize = 4;

/// A listings `Group` already encoded, as runs of whole fields written one
/// after the other. Protobuf reads a later field as adding to a repeated field
/// or replacing a single one, so a card kept encoded can be sent with its next
/// meetings appended without being decoded or copied field by field.
#[derive(Clone, Default, PartialEq)]
pub struct EncodedGroup {
    runs: [Bytes; RUNS],
}

impl EncodedGroup {
    /// A group from runs of encoded `Group` fields (each may be empty), sent in
    /// this order.
    pub fn from_runs(runs: [Bytes; RUNS]) -> EncodedGroup {
        EncodedGroup { runs }
    }

    /// The group as the published type reads it (for tests and the rare
    /// reader in the same process; clients decode the bytes themselves).
    pub fn decode_group(&self) -> Result<Group, DecodeError> {
        Group::decode(self.to_bytes().as_slice())
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.encoded_len());
        self.encode_raw(&mut bytes);
        bytes
    }
}

impl From<&Group> for EncodedGroup {
    fn from(group: &Group) -> EncodedGroup {
        let mut runs: [Bytes; RUNS] = Default::default();
        runs[0] = Bytes::from(group.encode_to_vec());
        EncodedGroup { runs }
    }
}

impl From<Group> for EncodedGroup {
    fn from(group: Group) -> EncodedGroup {
        EncodedGroup::from(&group)
    }
}

impl std::fmt::Debug for EncodedGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedGroup")
            .field("encoded_len", &self.encoded_len())
            .finish()
    }
}

impl Message for EncodedGroup {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        for run in &self.runs {
            buf.put_slice(run);
        }
    }

    /// The server never decodes a group; this keeps the type honest for any
    /// reader that does, by merging into the published type and encoding again.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let mut group = self.decode_group()?;
        group.merge_field(tag, wire_type, buf, ctx)?;
        *self = EncodedGroup::from(&group);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.runs.iter().map(Bytes::len).sum()
    }

    fn clear(&mut self) {
        self.runs = Default::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listings::v1::{Occurrence, Venue};

    fn group() -> Group {
        Group {
            id: "g".into(),
            name: "Walk and talk".into(),
            venues: vec![Venue {
                name: "Library".into(),
                ..Default::default()
            }],
            version: 3,
            ..Default::default()
        }
    }

    #[test]
    fn runs_appended_read_as_one_group() {
        let card = Bytes::from(group().encode_to_vec());
        let meeting = |date: &str| {
            Group {
                next_occurrences: vec![Occurrence {
                    local_date: date.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }
            .encode_to_vec()
            .into()
        };
        let checked = Group {
            recently_checked: true,
            ..Default::default()
        };
        let sent = EncodedGroup::from_runs([
            card,
            meeting("2026-12-07"),
            meeting("2026-12-14"),
            checked.encode_to_vec().into(),
        ]);
        let mut whole = group();
        whole.next_occurrences = vec![
            Occurrence {
                local_date: "2026-12-07".into(),
                ..Default::default()
            },
            Occurrence {
                local_date: "2026-12-14".into(),
                ..Default::default()
            },
        ];
        whole.recently_checked = true;
        assert_eq!(sent.decode_group().unwrap(), whole);
        assert_eq!(sent.encoded_len(), sent.to_bytes().len());
    }

    #[test]
    fn an_answer_carrying_groups_reads_as_the_published_answer() {
        let served = SearchGroupsResponse {
            groups: vec![EncodedGroup::from(group()), EncodedGroup::default()],
            distance_km: vec![1.5, 2.0],
            ..Default::default()
        };
        let published =
            crate::listings::v1::SearchGroupsResponse::decode(served.encode_to_vec().as_slice())
                .unwrap();
        assert_eq!(published.groups, vec![group(), Group::default()]);
        assert_eq!(published.distance_km, vec![1.5, 2.0]);
        // And back: a reader of the served type merges what it reads.
        let again = SearchGroupsResponse::decode(published.encode_to_vec().as_slice()).unwrap();
        assert_eq!(again.groups[0].decode_group().unwrap(), group());
    }
}
