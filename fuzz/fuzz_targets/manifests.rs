//! Manifest loading: any bytes as a YAML file of a folder. Loading never panics, and what
//! loads builds an index whose report covers every object.
#![no_main]

use libfuzzer_sys::fuzz_target;
use turnstile::engine::Snapshot;
use turnstile::sources::files;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut loaded = files::Loaded::default();
    files::load_str(std::path::Path::new("fuzz.yaml"), text, &mut loaded);
    let defs = loaded.definitions();
    let (_, report) = Snapshot::build(&defs, jiff::Timestamp::UNIX_EPOCH);
    for (kind, name) in loaded.origins.keys() {
        assert!(report.get(*kind, name).is_some(), "{kind}/{name} has no status");
    }
});
