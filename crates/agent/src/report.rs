//! The pprof form of an exact allocation report (`Heapscope::Report#write`
//! with `.pb.gz`): one sample per site (allocation line, class, type) with
//! the conventional sample types, `alloc_*` for what the block allocated and
//! `inuse_*` for what it retained. The report records the allocating line
//! only (as memory_profiler does), so each stack is one frame: a function
//! named `file:line` (so `go tool pprof -top` lists allocation sites).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use heapscope_pprof::{
    function, mapping, set_sample_types, Label, Line, Location, Profile, Sample, StringTable,
    LABEL_CLASS, LABEL_TYPE, MAPPING_ID,
};

/// One site of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRow {
    pub file: String,
    pub line: i64,
    pub class: String,
    pub ty: String,
    pub count: u64,
    pub bytes: u64,
    pub retained: u64,
    pub retained_bytes: u64,
}

/// The profile of `rows`; `program` names the mapping (Ruby's executable).
pub fn report_profile(rows: &[SiteRow], program: &str) -> Profile {
    let mut strings = StringTable::new();
    let mut profile = Profile::default();
    set_sample_types(&mut profile, &mut strings, 1);
    profile.mapping = vec![mapping(strings.get(program))];
    let mut locations: HashMap<(&str, i64), u64> = HashMap::new();
    for r in rows {
        let lid = *locations.entry((&r.file, r.line)).or_insert_with(|| {
            let id = profile.location.len() as u64 + 1;
            let fid = id;
            let name = strings.get(&format!("{}:{}", r.file, r.line));
            let file = strings.get(&r.file);
            profile.function.push(function(fid, name, file, r.line));
            profile.location.push(Location {
                id,
                mapping_id: MAPPING_ID,
                line: vec![Line {
                    function_id: fid,
                    line: r.line,
                }],
                ..Default::default()
            });
            id
        });
        let mut label = vec![Label {
            key: strings.get(LABEL_TYPE),
            str: strings.get(&r.ty),
            ..Default::default()
        }];
        if !r.class.is_empty() {
            label.push(Label {
                key: strings.get(LABEL_CLASS),
                str: strings.get(&r.class),
                ..Default::default()
            });
        }
        profile.sample.push(Sample {
            location_id: vec![lid],
            value: vec![
                r.count as i64,
                r.bytes as i64,
                r.retained as i64,
                r.retained_bytes as i64,
            ],
            label,
        });
    }
    profile.string_table = strings.into_table();
    profile
}

/// Writes `rows` as a gzipped pprof file, privately (0600) and atomically.
pub fn write_report_profile(path: &Path, rows: &[SiteRow], program: &str) -> io::Result<()> {
    let profile = report_profile(rows, program);
    heapscope_pprof::write_atomic(path, |w| heapscope_pprof::write_gz(&profile, w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_site_with_the_four_values() {
        let row = |line, class: &str| SiteRow {
            file: "app.rb".into(),
            line,
            class: class.into(),
            ty: "STRING".into(),
            count: 3,
            bytes: 120,
            retained: 1,
            retained_bytes: 40,
        };
        let p = report_profile(&[row(3, "String"), row(3, "Sub"), row(4, "")], "ruby");
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.location.len(), 2, "two lines of one file");
        assert_eq!(p.function.len(), 2, "one function per line");
        assert_eq!(p.string_table[p.function[0].name as usize], "app.rb:3");
        assert_eq!(p.sample[0].value, vec![3, 120, 1, 40]);
        assert_eq!(p.sample[2].label.len(), 1, "no class label without a class");
        let names: Vec<&str> = p
            .sample_type
            .iter()
            .map(|t| p.string_table[t.r#type as usize].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "alloc_objects",
                "alloc_space",
                "inuse_objects",
                "inuse_space"
            ]
        );
    }
}
