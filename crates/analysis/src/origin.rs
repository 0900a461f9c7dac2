//! Attribution of an allocation's source path to a gem, Ruby itself, or the app.
//!
//! [`origin_of`] looks at the raw bytes of a heap dump's `"file"` field and
//! recognises these layouts, checked in this order:
//!
//! 1. `<internal:kernel>` and other `<...>` pseudo paths: [`Origin::RubyCore`].
//!    Paths starting with `(` (`(eval)`, `(irb)`, `(eval at ...)`) are
//!    [`Origin::App`].
//! 2. A `gems/<name>-<version>/` directory anywhere in the path (RubyGems,
//!    Bundler, Debian's rubygems-integration, `vendor/bundle`), and Bundler
//!    git checkouts `bundler/gems/<name>-<12 hex sha>/`. When several match,
//!    the innermost wins, so that RVM's `~/.rvm/gems/ruby-3.1.0/gems/rack-2.2.3/`
//!    is `rack`; RVM's `rvm/gems/<ruby>/` gem-home directory itself is never a gem.
//! 3. Debian's `lib/ruby/vendor_ruby/[X.Y.Z/]<top>` and
//!    `lib/<triplet>/ruby/vendor_ruby/[X.Y.Z/]<top>`: a gem named `<top>`
//!    without a version, except `rubygems`, which is Ruby's own.
//! 4. `lib/ruby/<X.Y.Z>/` and Debian's `lib/<triplet>/ruby/<X.Y.Z>/`:
//!    [`Origin::Stdlib`].
//! 5. Anything else, including `site_ruby`: [`Origin::App`].
//!
//! Paths are split on `/` only and never touch the file system.

/// Where the code at a source path came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A gem; version is None when the layout does not tell it (Debian vendor_ruby).
    Gem {
        name: String,
        version: Option<String>,
    },
    /// Ruby's standard library (incl. default gems whose code lives in lib/ruby/X.Y.Z/ and the arch-specific ext dirs).
    Stdlib,
    /// Ruby's own core: paths like "<internal:kernel>", "<internal:gc>" and similar "<...>" pseudo paths.
    RubyCore,
    /// Everything else: the application's own code (including "-e", "(irb)", relative paths, eval'd code "(eval)" etc.).
    App,
}

impl Origin {
    /// Short label used as a grouping key and in tables, e.g. "rack 2.2.4", "rack (debian)", "ruby stdlib", "ruby core", "app".
    pub fn label(&self) -> String {
        match self {
            Origin::Gem {
                name,
                version: Some(version),
            } => format!("{name} {version}"),
            Origin::Gem {
                name,
                version: None,
            } => format!("{name} (debian)"),
            Origin::Stdlib => "ruby stdlib".to_owned(),
            Origin::RubyCore => "ruby core".to_owned(),
            Origin::App => "app".to_owned(),
        }
    }
}

/// Classify one path.
pub fn origin_of(path: &[u8]) -> Origin {
    match path.first() {
        None | Some(b'(') => return Origin::App,
        Some(b'<') => return Origin::RubyCore,
        Some(_) => {}
    }
    let components: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    if let Some(gem) = installed_gem(&components) {
        return gem;
    }
    if let Some(origin) = debian_vendor_ruby(&components) {
        return origin;
    }
    if is_stdlib(&components) {
        return Origin::Stdlib;
    }
    Origin::App
}

/// The innermost `gems/<name>-<version>/` (or Bundler git checkout) directory.
/// The directory must be followed by at least one more component.
fn installed_gem(components: &[&[u8]]) -> Option<Origin> {
    (0..components.len().saturating_sub(2))
        .rev()
        .filter(|&i| components[i] == b"gems")
        .find_map(|i| {
            let parent: &[u8] = if i > 0 { components[i - 1] } else { b"" };
            // RVM keeps one gem home per Ruby: `~/.rvm/gems/ruby-3.1.0/`.
            if parent == b".rvm" || parent == b"rvm" {
                return None;
            }
            let dir = components[i + 1];
            if parent == b"bundler" {
                if let Some(gem) = git_checkout_dir(dir) {
                    return Some(gem);
                }
            }
            versioned_gem_dir(dir)
        })
}

/// `<name>-<version>[-<platform>]`: the version is the first dash-separated
/// part (after the name's first part) that starts with a digit.
fn versioned_gem_dir(dir: &[u8]) -> Option<Origin> {
    let dash = dir
        .windows(2)
        .position(|w| w[0] == b'-' && w[1].is_ascii_digit())?;
    let name = &dir[..dash];
    let rest = &dir[dash + 1..];
    let version = rest.split(|&b| b == b'-').next().unwrap_or(rest);
    let name_ok = !name.is_empty() && name[0] != b'-' && name[name.len() - 1] != b'-';
    let version_ok = version
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'.');
    (name_ok && version_ok).then(|| gem(name, Some(version)))
}

/// Bundler git checkout directory: `<name>-<12 lowercase hex digits>`.
fn git_checkout_dir(dir: &[u8]) -> Option<Origin> {
    let dash = dir.iter().rposition(|&b| b == b'-')?;
    let (name, sha) = (&dir[..dash], &dir[dash + 1..]);
    let sha_ok = sha.len() == 12 && sha.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (!name.is_empty() && sha_ok).then(|| gem(name, Some(sha)))
}

/// Debian's `vendor_ruby` directories: packaged gems without a version.
fn debian_vendor_ruby(components: &[&[u8]]) -> Option<Origin> {
    let i = (2..components.len()).find(|&i| {
        components[i] == b"vendor_ruby"
            && components[i - 1] == b"ruby"
            && is_lib_dir(components[i - 2])
    })?;
    let mut rest = &components[i + 1..];
    if rest.len() > 1 && is_ruby_api_version(rest[0]) {
        rest = &rest[1..];
    }
    let (&top, below) = rest.split_first()?;
    let name = if below.is_empty() {
        // A top-level file such as `vendor_ruby/xmlrpc.rb`.
        top.strip_suffix(b".rb")
            .or_else(|| top.strip_suffix(b".so"))
            .unwrap_or(top)
    } else {
        top
    };
    if name.is_empty() || is_ruby_api_version(name) {
        return None;
    }
    if name == b"rubygems" {
        return Some(Origin::Stdlib);
    }
    Some(gem(name, None))
}

/// `lib/ruby/<X.Y.Z>/...` or Debian's `lib/<triplet>/ruby/<X.Y.Z>/...`.
fn is_stdlib(components: &[&[u8]]) -> bool {
    (1..components.len().saturating_sub(2)).any(|i| {
        components[i] == b"ruby"
            && is_lib_dir(components[i - 1])
            && is_ruby_api_version(components[i + 1])
    })
}

/// The directory holding `ruby/`: `lib`, `lib64`, or a Debian multiarch
/// triplet such as `x86_64-linux-gnu` or `arm-linux-gnueabihf`.
fn is_lib_dir(component: &[u8]) -> bool {
    component == b"lib"
        || component == b"lib64"
        || component.windows(10).any(|w| w == b"-linux-gnu")
}

/// Ruby's library version directory: `3.1.0`, `3.1` (built with
/// `--with-ruby-version=minor`) or `3.4.0+1` (development ABI versions).
fn is_ruby_api_version(component: &[u8]) -> bool {
    let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let version = match component.iter().position(|&b| b == b'+') {
        Some(plus) if all_digits(&component[plus + 1..]) => &component[..plus],
        Some(_) => return false,
        None => component,
    };
    version.contains(&b'.') && version.split(|&b| b == b'.').all(all_digits)
}

fn gem(name: &[u8], version: Option<&[u8]>) -> Origin {
    Origin::Gem {
        name: String::from_utf8_lossy(name).into_owned(),
        version: version.map(|v| String::from_utf8_lossy(v).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(path: &str) -> Origin {
        origin_of(path.as_bytes())
    }

    fn gem_v(name: &str, version: &str) -> Origin {
        Origin::Gem {
            name: name.to_owned(),
            version: Some(version.to_owned()),
        }
    }

    fn debian(name: &str) -> Origin {
        Origin::Gem {
            name: name.to_owned(),
            version: None,
        }
    }

    // --- gems -------------------------------------------------------------

    #[test]
    fn bundler_system_install() {
        assert_eq!(
            of("/usr/local/bundle/gems/rack-2.2.3/lib/rack.rb"),
            gem_v("rack", "2.2.3")
        );
    }

    #[test]
    fn user_gem_home() {
        assert_eq!(
            of("/home/u/.gem/ruby/3.1.0/gems/activesupport-7.0.4/lib/active_support/core_ext/object/blank.rb"),
            gem_v("activesupport", "7.0.4")
        );
    }

    #[test]
    fn rbenv_gem_is_gem_not_stdlib() {
        assert_eq!(
            of("/home/u/.rbenv/versions/3.2.2/lib/ruby/gems/3.2.0/gems/puma-6.0.0/lib/puma.rb"),
            gem_v("puma", "6.0.0")
        );
        assert_eq!(
            of("/usr/lib/ruby/gems/3.1.0/gems/x-1/lib/x.rb"),
            gem_v("x", "1")
        );
    }

    #[test]
    fn debian_rubygems_integration() {
        assert_eq!(
            of("/usr/share/rubygems-integration/all/gems/heapy-0.2.0/lib/heapy.rb"),
            gem_v("heapy", "0.2.0")
        );
        assert_eq!(
            of("/usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0/gems/racc-1.6.0/lib/racc.rb"),
            gem_v("racc", "1.6.0")
        );
    }

    #[test]
    fn vendor_bundle() {
        assert_eq!(
            of("/srv/app/vendor/bundle/ruby/3.1.0/gems/pg-1.4.5/lib/pg.rb"),
            gem_v("pg", "1.4.5")
        );
    }

    #[test]
    fn relative_vendor_bundle() {
        assert_eq!(
            of("vendor/bundle/ruby/3.1.0/gems/pg-1.4.5/lib/pg.rb"),
            gem_v("pg", "1.4.5")
        );
    }

    #[test]
    fn platform_suffix_is_dropped() {
        assert_eq!(
            of("/var/lib/gems/3.1.0/gems/nokogiri-1.13.10-x86_64-linux/lib/nokogiri.rb"),
            gem_v("nokogiri", "1.13.10")
        );
        assert_eq!(
            of("/g/gems/nokogiri-1.13.10-arm64-darwin/lib/nokogiri.rb"),
            gem_v("nokogiri", "1.13.10")
        );
        assert_eq!(
            of("/g/gems/puma-6.0.0-java/lib/puma.rb"),
            gem_v("puma", "6.0.0")
        );
        assert_eq!(
            of("/g/gems/sass-embedded-1.58.0-x86_64-linux-gnu/lib/sass.rb"),
            gem_v("sass-embedded", "1.58.0")
        );
        assert_eq!(
            of("/g/gems/ffi-1.15.5-x64-mingw-ucrt/lib/ffi.rb"),
            gem_v("ffi", "1.15.5")
        );
        assert_eq!(
            of("/g/gems/libv8-node-18.13.0.0-universal-darwin-22/lib/x.rb"),
            gem_v("libv8-node", "18.13.0.0")
        );
    }

    #[test]
    fn dashed_names() {
        assert_eq!(
            of("/g/gems/net-http-persistent-4.0.1/lib/net/http/persistent.rb"),
            gem_v("net-http-persistent", "4.0.1")
        );
        assert_eq!(
            of("/g/gems/google-protobuf-3.21.12-x86_64-linux/lib/google/protobuf.rb"),
            gem_v("google-protobuf", "3.21.12")
        );
        assert_eq!(
            of("/g/gems/aws-sdk-s3-1.119.0/lib/aws-sdk-s3.rb"),
            gem_v("aws-sdk-s3", "1.119.0")
        );
    }

    #[test]
    fn names_with_digits() {
        assert_eq!(
            of("/g/gems/i18n-1.12.0/lib/i18n.rb"),
            gem_v("i18n", "1.12.0")
        );
        assert_eq!(
            of("/g/gems/oauth2-2.0.9/lib/oauth2.rb"),
            gem_v("oauth2", "2.0.9")
        );
        // A name starting with a digit keeps its first part.
        assert_eq!(
            of("/g/gems/3scale-api-1.6.0/lib/3scale/api.rb"),
            gem_v("3scale-api", "1.6.0")
        );
    }

    #[test]
    fn prerelease_versions() {
        assert_eq!(
            of("/g/gems/rails-7.1.0.beta1/lib/rails.rb"),
            gem_v("rails", "7.1.0.beta1")
        );
        assert_eq!(
            of("/g/gems/foo-2.0.0.pre.rc1/lib/foo.rb"),
            gem_v("foo", "2.0.0.pre.rc1")
        );
    }

    #[test]
    fn bundler_git_checkout() {
        assert_eq!(
            of("/usr/local/bundle/bundler/gems/rails-0123456789ab/activesupport/lib/active_support.rb"),
            gem_v("rails", "0123456789ab")
        );
        // A sha starting with a letter is not a version, but is a git checkout.
        assert_eq!(
            of("/srv/app/vendor/bundle/ruby/3.1.0/bundler/gems/my-lib-abcdef012345/lib/my_lib.rb"),
            gem_v("my-lib", "abcdef012345")
        );
    }

    #[test]
    fn bundler_gems_dir_with_plain_version() {
        assert_eq!(
            of("/x/bundler/gems/foo-1.2.3/lib/foo.rb"),
            gem_v("foo", "1.2.3")
        );
    }

    #[test]
    fn git_sha_needs_bundler_parent_and_exact_shape() {
        // Not under bundler/: a letter-initial suffix is no version.
        assert_eq!(of("/x/gems/foo-abcdef012345/lib/foo.rb"), Origin::App);
        // Under bundler/ but wrong length or not hex.
        assert_eq!(
            of("/x/bundler/gems/foo-abcdef01234/lib/foo.rb"),
            Origin::App
        );
        assert_eq!(
            of("/x/bundler/gems/foo-abcdef01234g/lib/foo.rb"),
            Origin::App
        );
        assert_eq!(
            of("/x/bundler/gems/foo-ABCDEF012345/lib/foo.rb"),
            Origin::App
        );
    }

    #[test]
    fn rvm_layout() {
        assert_eq!(
            of("/home/u/.rvm/gems/ruby-3.1.0/gems/rack-2.2.3/lib/rack.rb"),
            gem_v("rack", "2.2.3")
        );
        assert_eq!(
            of("/usr/local/rvm/gems/ruby-3.1.0@global/gems/rake-13.0.6/lib/rake.rb"),
            gem_v("rake", "13.0.6")
        );
        // The gem home itself is not a gem.
        assert_eq!(of("/home/u/.rvm/gems/ruby-3.1.0/bin/rackup"), Origin::App);
        // And RVM's Ruby is stdlib.
        assert_eq!(
            of("/home/u/.rvm/rubies/ruby-3.1.0/lib/ruby/3.1.0/set.rb"),
            Origin::Stdlib
        );
    }

    #[test]
    fn innermost_gem_dir_wins() {
        assert_eq!(
            of("/home/u/gems/tool-2/vendor/bundle/ruby/3.1.0/gems/pg-1.4.5/lib/pg.rb"),
            gem_v("pg", "1.4.5")
        );
    }

    #[test]
    fn gem_dir_must_be_a_directory() {
        assert_eq!(of("/x/gems/rack-2.2.3"), Origin::App);
        assert_eq!(of("/x/gems/rack-2.2.3/"), gem_v("rack", "2.2.3"));
        assert_eq!(of("gems/rack-2.2.3/lib/rack.rb"), gem_v("rack", "2.2.3"));
    }

    #[test]
    fn not_gem_dirs() {
        assert_eq!(of("/home/u/gems-app/lib/x.rb"), Origin::App);
        assert_eq!(of("/home/u/mygems/foo-1.0/lib/x.rb"), Origin::App);
        assert_eq!(of("/gems/foo/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/gems/3.1.0/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/gems/-1.0/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/gems/foo--1.0/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/gems/foo-1.0_old/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/gems/foo-1+2/lib/foo.rb"), Origin::App);
        assert_eq!(of("/x/GEMS/foo-1.0/lib/foo.rb"), Origin::App);
    }

    #[test]
    fn non_utf8_gem_name_is_lossy() {
        assert_eq!(
            origin_of(b"/x/gems/caf\xe9-1.0/lib/cafe.rb"),
            gem_v("caf\u{FFFD}", "1.0")
        );
        assert_eq!(
            origin_of(b"/x/gems/rack-2.2.3/lib/\xff\xfe.rb"),
            gem_v("rack", "2.2.3")
        );
        assert_eq!(
            origin_of(b"/usr/lib/ruby/vendor_ruby/\xffoo/x.rb"),
            debian("\u{FFFD}oo")
        );
    }

    // --- Debian vendor_ruby -------------------------------------------------

    #[test]
    fn vendor_ruby_directory_and_file() {
        assert_eq!(
            of("/usr/lib/ruby/vendor_ruby/xmlrpc/client.rb"),
            debian("xmlrpc")
        );
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/xmlrpc.rb"), debian("xmlrpc"));
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/thing.so"), debian("thing"));
    }

    #[test]
    fn vendor_ruby_versioned_subdir() {
        assert_eq!(
            of("/usr/lib/ruby/vendor_ruby/3.1.0/foo/bar.rb"),
            debian("foo")
        );
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/3.1.0"), Origin::App);
    }

    #[test]
    fn vendor_ruby_arch_dir() {
        assert_eq!(
            of("/usr/lib/x86_64-linux-gnu/ruby/vendor_ruby/3.1.0/nokogiri/nokogiri.so"),
            debian("nokogiri")
        );
        assert_eq!(
            of("/usr/lib/x86_64-linux-gnu/ruby/vendor_ruby/3.1.0/ox.so"),
            debian("ox")
        );
        assert_eq!(
            of("/usr/lib/arm-linux-gnueabihf/ruby/vendor_ruby/3.1.0/byebug/byebug.so"),
            debian("byebug")
        );
    }

    #[test]
    fn vendor_ruby_rubygems_is_stdlib() {
        assert_eq!(
            of("/usr/lib/ruby/vendor_ruby/rubygems/defaults/operating_system.rb"),
            Origin::Stdlib
        );
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/rubygems.rb"), Origin::Stdlib);
    }

    #[test]
    fn vendor_ruby_without_top_is_app() {
        assert_eq!(of("/usr/lib/ruby/vendor_ruby"), Origin::App);
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/"), Origin::App);
        assert_eq!(of("/usr/lib/ruby/vendor_ruby/.rb"), Origin::App);
    }

    #[test]
    fn vendor_ruby_needs_lib_ruby_parent() {
        assert_eq!(of("/srv/app/vendor_ruby/foo/x.rb"), Origin::App);
        assert_eq!(of("/srv/app/ruby/vendor_ruby/foo/x.rb"), Origin::App);
    }

    // --- stdlib -------------------------------------------------------------

    #[test]
    fn stdlib_paths() {
        assert_eq!(of("/usr/lib/ruby/3.1.0/set.rb"), Origin::Stdlib);
        assert_eq!(
            of("/usr/local/lib/ruby/3.3.0/json/common.rb"),
            Origin::Stdlib
        );
        assert_eq!(
            of("/home/u/.rbenv/versions/3.2.2/lib/ruby/3.2.0/x86_64-linux/socket.so"),
            Origin::Stdlib
        );
        assert_eq!(
            of("/usr/lib/ruby/3.1.0/rubygems/specification.rb"),
            Origin::Stdlib
        );
        assert_eq!(of("/usr/lib64/ruby/2.5.0/set.rb"), Origin::Stdlib);
    }

    #[test]
    fn stdlib_debian_arch_dir() {
        assert_eq!(
            of("/usr/lib/x86_64-linux-gnu/ruby/3.1.0/rbconfig.rb"),
            Origin::Stdlib
        );
        assert_eq!(
            of("/usr/lib/aarch64-linux-gnu/ruby/3.1.0/json/ext/parser.so"),
            Origin::Stdlib
        );
    }

    #[test]
    fn stdlib_version_shapes() {
        assert_eq!(of("/opt/ruby/lib/ruby/3.1/set.rb"), Origin::Stdlib);
        assert_eq!(of("/opt/ruby/lib/ruby/3.4.0+1/set.rb"), Origin::Stdlib);
        assert_eq!(of("/opt/ruby/lib/ruby/3/set.rb"), Origin::App);
        assert_eq!(of("/opt/ruby/lib/ruby/3..1/set.rb"), Origin::App);
        assert_eq!(of("/opt/ruby/lib/ruby/3.1.0+/set.rb"), Origin::App);
        assert_eq!(of("/opt/ruby/lib/ruby/3.1.0+x/set.rb"), Origin::App);
        assert_eq!(of("/opt/ruby/lib/ruby/v3.1.0/set.rb"), Origin::App);
    }

    #[test]
    fn site_ruby_is_app() {
        assert_eq!(of("/usr/lib/ruby/site_ruby/3.1.0/foo.rb"), Origin::App);
        assert_eq!(of("/usr/local/lib/site_ruby/foo.rb"), Origin::App);
    }

    #[test]
    fn ruby_version_dir_outside_lib_is_app() {
        assert_eq!(
            of("/srv/app/vendor/bundle/ruby/3.1.0/bin/rake"),
            Origin::App
        );
        assert_eq!(of("/usr/lib/ruby/3.1.0"), Origin::App);
    }

    // --- Ruby core and app --------------------------------------------------

    #[test]
    fn ruby_core_pseudo_paths() {
        assert_eq!(of("<internal:kernel>"), Origin::RubyCore);
        assert_eq!(of("<internal:gc>"), Origin::RubyCore);
        assert_eq!(of("<internal:pack>"), Origin::RubyCore);
        assert_eq!(of("<main>"), Origin::RubyCore);
    }

    #[test]
    fn app_paths() {
        assert_eq!(of(""), Origin::App);
        assert_eq!(of("-e"), Origin::App);
        assert_eq!(of("(irb)"), Origin::App);
        assert_eq!(of("(eval)"), Origin::App);
        assert_eq!(
            of("(eval at /usr/local/bundle/gems/rack-2.2.3/lib/rack/builder.rb:105)"),
            Origin::App
        );
        assert_eq!(of("app/models/user.rb"), Origin::App);
        assert_eq!(of("./script.rb"), Origin::App);
        assert_eq!(
            of("/srv/app/app/controllers/home_controller.rb"),
            Origin::App
        );
        assert_eq!(of("/"), Origin::App);
        assert_eq!(origin_of(b"/srv/\xff\xfe/app.rb"), Origin::App);
    }

    // --- labels -------------------------------------------------------------

    #[test]
    fn labels() {
        assert_eq!(gem_v("rack", "2.2.4").label(), "rack 2.2.4");
        assert_eq!(debian("rack").label(), "rack (debian)");
        assert_eq!(Origin::Stdlib.label(), "ruby stdlib");
        assert_eq!(Origin::RubyCore.label(), "ruby core");
        assert_eq!(Origin::App.label(), "app");
        assert_eq!(
            of("/usr/local/bundle/bundler/gems/rails-0123456789ab/x/y.rb").label(),
            "rails 0123456789ab"
        );
    }

    #[test]
    fn origins_work_as_hash_keys() {
        let mut set = std::collections::HashSet::new();
        set.insert(of("/g/gems/rack-2.2.3/lib/rack.rb"));
        set.insert(of("/g/gems/rack-2.2.3/lib/rack/utils.rb"));
        set.insert(of("/g/gems/rack-2.2.4/lib/rack.rb"));
        set.insert(of("/usr/lib/ruby/3.1.0/set.rb"));
        set.insert(of("/usr/lib/ruby/3.1.0/json.rb"));
        assert_eq!(set.len(), 3);
    }
}
