//! Fuzzes the frame and header decoder: any byte stream must decode to frames or a clean error,
//! never a panic, and whatever decodes must re-encode and decode to the same command.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rmqc::remoting::codec::decode_frame;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(cmd)) = decode_frame(&mut buf, 1 << 20) {
        let mut again = BytesMut::new();
        cmd.encode_frame(&mut again);
        let back = decode_frame(&mut again, usize::MAX).expect("re-encoded frame decodes").expect("whole");
        assert_eq!(back.code, cmd.code);
        assert_eq!(back.opaque, cmd.opaque);
        assert_eq!(back.body, cmd.body);
    }
});
