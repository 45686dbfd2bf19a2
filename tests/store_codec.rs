//! Property tests of the record codec, batch-body decoder and hashes.
#![allow(clippy::unwrap_used)] // tests and benches may unwrap

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use proptest::prelude::*;
use rmqc::store::index::{build_key, index_key_hash, index_key_hash_parts};
use rmqc::store::message::*;

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p)),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), p)),
    ]
}

prop_compose! {
    fn inner()(topic in "[A-Za-z0-9_%|-]{1,200}",
               queue_id in 0i32..1024,
               flag in any::<i32>(),
               body in proptest::collection::vec(any::<u8>(), 0..2000),
               props in proptest::collection::vec(("[a-zA-Z_]{1,12}", "[^\u{1}\u{2}]{1,20}"), 0..6),
               sys_flag in prop_oneof![Just(0), Just(sysflag::TRANSACTION_COMMIT), Just(sysflag::COMPRESSED)],
               born_timestamp in any::<i64>(),
               born_host in addr(),
               store_host in addr(),
               reconsume_times in any::<i32>(),
               prepared_transaction_offset in any::<i64>()) -> MessageInner {
        let mut m = MessageInner::new(topic, queue_id, body);
        m.flag = flag;
        m.set_properties(props);
        m.sys_flag = sys_flag;
        m.born_timestamp = born_timestamp;
        m.born_host = born_host;
        m.store_host = store_host;
        m.reconsume_times = reconsume_times;
        m.prepared_transaction_offset = prepared_transaction_offset;
        m
    }
}

fn encode(m: &MessageInner, phys: i64) -> Vec<u8> {
    let v = MessageVersion::for_topic(&m.topic, true);
    let mut buf = vec![0u8; m.record_length(v)];
    let st = RecordStamp {
        version: v,
        body_crc: body_crc(&m.body),
        queue_offset: 5,
        physical_offset: phys,
        store_timestamp: 1234,
    };
    assert_eq!(encode_record(m, &st, &mut buf), Some(buf.len()));
    buf
}

proptest! {
    #[test]
    fn roundtrip(m in inner(), phys in 0i64..i64::MAX) {
        let buf = Bytes::from(encode(&m, phys));
        let e = decode_record(&buf, true).unwrap();
        prop_assert_eq!(e.store_size as usize, buf.len());
        prop_assert_eq!(&e.topic, &m.topic);
        prop_assert_eq!(e.queue_id, m.queue_id);
        prop_assert_eq!(e.flag, m.flag);
        prop_assert_eq!(&e.body[..], &m.body[..]);
        prop_assert_eq!(&e.properties_string, &m.properties);
        prop_assert_eq!(e.sys_flag, m.effective_sys_flag());
        prop_assert_eq!(e.born_timestamp, m.born_timestamp);
        prop_assert_eq!(e.born_host, m.born_host);
        prop_assert_eq!(e.store_host, m.store_host);
        prop_assert_eq!(e.reconsume_times, m.reconsume_times);
        prop_assert_eq!(e.prepared_transaction_offset, m.prepared_transaction_offset);
        prop_assert_eq!(e.commit_log_offset, phys);
        prop_assert_eq!(e.version, if m.topic.len() > 127 { MessageVersion::V2 } else { MessageVersion::V1 });
        prop_assert_eq!(decode_offset_msg_id(&e.msg_id), Some((m.store_host, phys)));
        prop_assert_eq!(
            store_timestamp_position(e.sys_flag),
            if m.born_host.is_ipv6() { 68 } else { 56 }
        );
    }

    #[test]
    fn truncated_records_are_never_accepted(m in inner(), cut in 1usize..64) {
        let buf = encode(&m, 0);
        let n = buf.len().saturating_sub(cut);
        prop_assert!(!matches!(check_record(&buf[..n], true), RecordCheck::Message(_)));
    }

    #[test]
    fn flipped_body_byte_fails_crc(m in inner(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        prop_assume!(!m.body.is_empty());
        let mut buf = encode(&m, 0);
        let body_start = 4 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8
            + if m.born_host.is_ipv6() { 20 } else { 8 } + 8
            + if m.store_host.is_ipv6() { 20 } else { 8 } + 4 + 8 + 4;
        buf[body_start + at.index(m.body.len())] ^= 1 << bit;
        let bad_crc = matches!(check_record(&buf, true), RecordCheck::Invalid(DecodeError::BadCrc { .. }));
        prop_assert!(bad_crc);
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = check_record(&data, true);
        let b = Bytes::from(data);
        let _ = decode_record(&b, true);
        let _ = decode_batch_body(&b);
        let _ = decode_records(&b, false);
    }

    #[test]
    fn index_hash_parts_match(topic in "[A-Za-z0-9_]{1,30}", key in ".{0,30}") {
        prop_assert_eq!(index_key_hash_parts(&topic, &key), index_key_hash(&build_key(&topic, &key)));
        prop_assert!(index_key_hash(&key) >= 0);
    }

    #[test]
    fn properties_roundtrip(props in proptest::collection::btree_map("[a-zA-Z_]{1,12}", "[^\u{1}\u{2}]{1,20}", 0..8)) {
        let s = encode_properties(&props);
        let back = parse_properties(&s);
        prop_assert_eq!(back.len(), props.len());
        for (k, v) in &props {
            prop_assert_eq!(back.get(k), Some(v));
        }
    }
}
