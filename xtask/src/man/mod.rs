//! `man OUT_DIR`: the pages' assembly.
//!
//! A generated page is clap_mangen's title, NAME, SYNOPSIS, DESCRIPTION and OPTIONS, with the
//! hand-written prose of `man/sections/PAGE.md` ([`markup`]) added: its `# DESCRIPTION`
//! paragraphs after clap's description, its other sections after OPTIONS. The page builders
//! are in [`pages`]; `tracker_info.txt.5` is hand-written and only gets its date here.

mod date;
mod markup;
mod pages;

use crate::output::{check_no_leak, create_dir, write};
use anyhow::{Context, Result, bail};
use clap_mangen::Man;
use clap_mangen::roff::Roff;
use markup::Writer;
use std::path::{Path, PathBuf};

/// The hand-written page, relative to the workspace root.
const TRACKER_INFO_PAGE: &str = "man/tracker_info.txt.5";

pub fn man(out_dir: &Path) -> Result<()> {
    create_dir(out_dir)?;
    let date = date::man_date()?;
    let version = env!("CARGO_PKG_VERSION");
    for page in pages::all()? {
        let file = format!("{}.{}", page.cmd.get_name(), page.section);
        let text = page.render(&date)?;
        check_no_leak(&text, &file)?;
        write(&out_dir.join(file), &text)?;
    }

    // The hand-written page gets the same date and source line as the generated ones.
    let source = workspace_root().join(TRACKER_INFO_PAGE);
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let th = format!(".TH TRACKER_INFO.TXT 5 {date} \"p2p {version}\" \"File Formats Manual\"");
    let mut replaced = false;
    let text: String = text
        .lines()
        .map(|line| {
            if !replaced && line.starts_with(".TH ") {
                replaced = true;
                th.clone()
            } else {
                line.to_owned()
            }
        })
        .flat_map(|line| [line, "\n".to_owned()])
        .collect();
    if !replaced {
        bail!("{} has no .TH line", source.display());
    }
    write(&out_dir.join("tracker_info.txt.5"), &text)
}

/// One generated page.
#[derive(Debug)]
struct Page {
    cmd: clap::Command,
    section: &'static str,
    manual: &'static str,
    /// Paragraphs added to DESCRIPTION.
    description: Roff,
    /// Sections after OPTIONS.
    sections: Roff,
}

/// A page's hand-written prose: the file's name (for errors) and its text.
struct Prose {
    file: &'static str,
    text: &'static str,
}

/// Sections clap_mangen writes; the prose can only add to DESCRIPTION.
const GENERATED_SECTIONS: [&str; 3] = ["NAME", "SYNOPSIS", "OPTIONS"];

impl Page {
    /// `cmd`'s page in `section` of `manual`; `inserts` are the generated pieces the prose
    /// places with `{name}` lines.
    fn new(
        cmd: clap::Command,
        section: &'static str,
        manual: &'static str,
        prose: Prose,
        mut inserts: Vec<(&str, Roff)>,
    ) -> Result<Self> {
        let in_file = |e: anyhow::Error| e.context(format!("in {}", prose.file));
        let mut description = Writer::default();
        let mut sections = Writer::default();
        for (i, section) in markup::parse(prose.file, prose.text)?.iter().enumerate() {
            if section.title == "DESCRIPTION" && i == 0 {
                // It continues clap's DESCRIPTION: no .SH, and a .PP before its first paragraph.
                description
                    .blocks(&section.blocks, &mut inserts)
                    .map_err(in_file)?;
            } else if section.title == "DESCRIPTION"
                || GENERATED_SECTIONS.contains(&&*section.title)
            {
                bail!(
                    "{}: # {} is generated; only a first # DESCRIPTION can add to it",
                    prose.file,
                    section.title
                );
            } else {
                sections.section(&section.title);
                sections
                    .blocks(&section.blocks, &mut inserts)
                    .map_err(in_file)?;
            }
        }
        if let Some((name, _)) = inserts.first() {
            bail!("{} has no {{{name}}} line", prose.file);
        }
        Ok(Page {
            cmd,
            section,
            manual,
            description: description.finish(),
            sections: sections.finish(),
        })
    }

    fn render(&self, date: &str) -> Result<String> {
        let name = self.cmd.get_name().to_owned();
        let version = self.cmd.get_version().unwrap_or_default().to_owned();
        let man = Man::new(self.cmd.clone())
            .title(name.to_uppercase())
            .section(self.section)
            .date(date)
            .source(format!("p2p {version}"))
            .manual(self.manual);

        // The header's second line predates man/sections/; it is kept so that the pages do not
        // change.
        let mut out = format!(
            ".\\\" Generated from the clap definition of {name} by `cargo run -p xtask -- man`.\n\
             .\\\" Do not edit; edit the definition or xtask/src/main.rs.\n{ROFF_PREAMBLE}"
        );
        let piece = |render: &dyn Fn(&Man, &mut Vec<u8>) -> std::io::Result<()>| {
            let mut buf = Vec::new();
            render(&man, &mut buf)?;
            let text = String::from_utf8(buf).context("page is not UTF-8")?;
            anyhow::Ok(text.strip_prefix(ROFF_PREAMBLE).unwrap_or(&text).to_owned())
        };
        out += &piece(&|m, w| m.render_title(w))?;
        // Left-aligned, unhyphenated: paths and option names stay whole.
        out += ".ad l\n.nh\n";
        out += &piece(&|m, w| m.render_name_section(w))?;
        out += &piece(&|m, w| m.render_synopsis_section(w))?;
        out += &piece(&|m, w| m.render_description_section(w))?;
        out += &roff_body(&self.description);
        if self.cmd.get_arguments().any(|a| !a.is_hide_set()) {
            out += &piece(&|m, w| m.render_options_section(w))?;
        }
        out += &roff_body(&self.sections);
        Ok(out)
    }
}

/// What `roff` writes at the start of every rendering; kept once per page.
const ROFF_PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

fn roff_body(roff: &Roff) -> String {
    let text = roff.render();
    text.strip_prefix(ROFF_PREAMBLE).unwrap_or(&text).to_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_render_without_machine_paths() {
        for page in pages::all().unwrap() {
            let text = page.render("2026-01-01").unwrap();
            check_no_leak(&text, page.cmd.get_name()).unwrap();
            assert!(text.contains(".SH OPTIONS"));
            assert!(text.contains(".SH \"SEE ALSO\""));
        }
        let text = pages::p2pctl().unwrap().render("2026-01-01").unwrap();
        assert!(text.contains("$XDG_RUNTIME_DIR/p2pd/p2pd.sock"));
        assert!(text.contains("download_file"));
        assert!(
            text.contains(r"Command\-line client"),
            "p2pctl's own description"
        );
    }

    #[test]
    fn prose_cannot_replace_generated_sections() {
        let page = |text| {
            let prose = Prose { file: "t.md", text };
            Page::new(clap::Command::new("t"), "1", "M", prose, Vec::new())
        };
        assert!(page("# DESCRIPTION\n\nMore.\n\n# FILES\n\nNone.\n").is_ok());
        assert!(page("# FILES\n\nNone.\n\n# DESCRIPTION\n\nMore.\n").is_err());
        assert!(page("# OPTIONS\n\nNone.\n").is_err());
        let prose = Prose {
            file: "t.md",
            text: "# FILES\n\nNone.\n",
        };
        let inserts = vec![("commands", Roff::new())];
        let err = Page::new(clap::Command::new("t"), "1", "M", prose, inserts).unwrap_err();
        assert!(err.to_string().contains("{commands}"), "{err}");
    }
}
