//! `starts_like_dump`, which picks heap dumps out of a directory of other files.

use std::io::Write;

use heapscope_reader::starts_like_dump;

fn file(contents: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(contents).unwrap();
    f.flush().unwrap();
    f
}

#[test]
fn dumps_are_recognised_and_other_files_are_not() {
    let dump = b"\n{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[\"0x1\"]}\n{\"address\":\"0x1\", \"type\":\"STRING\"}\n";
    assert!(starts_like_dump(file(dump).path()));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(dump).unwrap();
    assert!(starts_like_dump(file(&gz.finish().unwrap()).path()));
    // A pretty-printed JSON document, a log, an empty file, binary junk.
    assert!(!starts_like_dump(
        file(b"{\n  \"schema\": 1,\n  \"type\": \"x\"\n}\n").path()
    ));
    assert!(!starts_like_dump(
        file(b"I, [2024-06-01] INFO -- : Puma starting\n").path()
    ));
    assert!(!starts_like_dump(file(b"").path()));
    assert!(!starts_like_dump(file(&[0, 159, 146, 150, 1, 2]).path()));
}

#[test]
fn a_first_line_longer_than_what_is_read_is_judged_by_its_start() {
    let mut dump = b"{\"type\":\"ROOT\", \"root\":\"vm\", \"references\":[".to_vec();
    for i in 0..20_000 {
        dump.extend_from_slice(format!("\"0x{:x}\", ", 0x1000 + i * 40).as_bytes());
    }
    dump.extend_from_slice(b"\"0x1\"]}\n{\"address\":\"0x1\", \"type\":\"STRING\"}\n");
    assert!(dump.len() > 64 << 10);
    assert!(starts_like_dump(file(&dump).path()));
    let mut junk = vec![b'x'; 100 << 10];
    junk.push(b'\n');
    assert!(!starts_like_dump(file(&junk).path()));
}
