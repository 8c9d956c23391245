//! The hand-written prose of the pages, `man/sections/*.md`, and its translation to roff.
//!
//! The format (described for its writers in `man/README.md`) is a small subset of markdown,
//! one block per group of lines, blocks separated by blank lines:
//!
//! - `# TITLE`: a section (`.SH`);
//! - lines indented by four spaces: an example, shown as it is (`.RS 4`, `.nf`);
//! - a tag on its own line(s), then `: text`: a tagged paragraph (`.TP`), as in pandoc's
//!   definition lists;
//! - `{name}` alone: roff the page builder generates (p2pctl's list of commands);
//! - anything else: a paragraph, its lines joined with single spaces.
//!
//! Inside paragraphs and tags, `{b:text}` is bold and `{i:text}` italic ([`md`]). Lines from
//! one starting with `<!--` to one ending with `-->` are a comment. `roff` escapes everything,
//! so the text is written as it should read.

use anyhow::{Result, bail};
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

/// One block of prose.
#[derive(Debug, PartialEq, Eq)]
pub enum Block {
    Para(String),
    Item { tag: String, text: String },
    Example(Vec<String>),
    Insert(String),
}

/// One `# TITLE` and the blocks under it.
#[derive(Debug, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// Splits a prose file into its sections; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<Section>> {
    let mut sections: Vec<Section> = Vec::new();
    // The lines of the block being read, with the number of its first line.
    let mut block: Vec<&str> = Vec::new();
    let mut start = 0;
    let flush = |block: &mut Vec<&str>, start: usize, sections: &mut Vec<Section>| -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let parsed = parse_block(block).map_err(|e| anyhow::anyhow!("{file}:{start}: {e}"))?;
        block.clear();
        match sections.last_mut() {
            Some(section) => section.blocks.push(parsed),
            None => bail!("{file}:{start}: text before the first `# ` heading"),
        }
        Ok(())
    };
    let mut in_comment = false;
    for (number, line) in (1..).zip(text.lines()) {
        let line = line.trim_end();
        if in_comment || line.starts_with("<!--") {
            in_comment = !line.ends_with("-->");
            continue;
        }
        if line.is_empty() {
            flush(&mut block, start, &mut sections)?;
        } else if let Some(title) = line.strip_prefix("# ") {
            flush(&mut block, start, &mut sections)?;
            sections.push(Section {
                title: title.trim().to_owned(),
                blocks: Vec::new(),
            });
        } else if line.starts_with('#') {
            bail!("{file}:{number}: only `# TITLE` headings are understood");
        } else {
            if block.is_empty() {
                start = number;
            }
            block.push(line);
        }
    }
    if in_comment {
        bail!("{file}: a `<!--` comment is not closed with `-->`");
    }
    flush(&mut block, start, &mut sections)?;
    Ok(sections)
}

fn parse_block(lines: &[&str]) -> Result<Block> {
    const INDENT: &str = "    ";
    if lines[0].starts_with(INDENT) {
        let mut example = Vec::new();
        for line in lines {
            match line.strip_prefix(INDENT) {
                Some(line) => example.push(line.to_owned()),
                None => bail!("an example's lines must all be indented by four spaces"),
            }
        }
        return Ok(Block::Example(example));
    }
    if let [line] = lines
        && let Some(name) = line.strip_prefix('{').and_then(|l| l.strip_suffix('}'))
        && !name.is_empty()
        && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    {
        return Ok(Block::Insert(name.to_owned()));
    }
    let is_definition = |line: &&str| *line == ":" || line.starts_with(": ");
    match lines.iter().position(is_definition) {
        None => Ok(Block::Para(join(lines))),
        Some(0) => bail!("`: text` needs a tag on the line before it"),
        Some(at) => {
            let (tag, text) = lines.split_at(at);
            if text[1..].iter().any(is_definition) {
                bail!("one tag, one `: text`; separate the next tag with a blank line");
            }
            let mut text = text.to_vec();
            text[0] = &text[0][1..];
            Ok(Block::Item {
                tag: join(tag),
                text: join(&text),
            })
        }
    }
}

/// The lines of a paragraph as one line: trimmed, joined with single spaces.
fn join(lines: &[&str]) -> String {
    lines
        .iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The inline markup: `{b:text}` is bold, `{i:text}` italic, the rest roman (a `{` that starts
/// neither is kept as it is).
pub fn md(text: &str) -> Vec<Inline> {
    let mut inlines = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let tail = &rest[start..];
        let font: Option<fn(String) -> Inline> = if tail.starts_with("{b:") {
            Some(|s: String| bold(s))
        } else if tail.starts_with("{i:") {
            Some(|s: String| italic(s))
        } else {
            None
        };
        match (font, tail.find('}')) {
            (Some(font), Some(end)) => {
                if start > 0 {
                    inlines.push(roman(&rest[..start]));
                }
                inlines.push(font(tail[3..end].to_owned()));
                rest = &tail[end + 1..];
            }
            _ => {
                inlines.push(roman(&rest[..=start]));
                rest = &rest[start + 1..];
            }
        }
    }
    if !rest.is_empty() {
        inlines.push(roman(rest));
    }
    inlines
}

/// Writes prose as roff.
#[derive(Default)]
pub struct Writer {
    roff: Roff,
    /// A section just started (after .SH): the next paragraph needs no .PP.
    fresh: bool,
}

impl Writer {
    pub fn section(&mut self, title: &str) {
        self.roff.control("SH", [title]);
        self.fresh = true;
    }

    /// Writes `blocks`; an [`Block::Insert`] takes its roff out of `inserts`.
    pub fn blocks(&mut self, blocks: &[Block], inserts: &mut Vec<(&str, Roff)>) -> Result<()> {
        for block in blocks {
            match block {
                Block::Para(text) => self.para(text),
                Block::Item { tag, text } => self.item(tag, text),
                Block::Example(lines) => self.example(lines),
                Block::Insert(name) => match inserts.iter().position(|(n, _)| n == name) {
                    Some(at) => {
                        let (_, roff) = inserts.remove(at);
                        self.raw(roff);
                    }
                    None => bail!("nothing to insert for {{{name}}} here"),
                },
            }
        }
        Ok(())
    }

    /// A paragraph; the first one of a section follows .SH directly.
    fn para(&mut self, text: &str) {
        if !self.fresh {
            self.roff.control("PP", []);
        }
        self.roff.text(md(text));
        self.fresh = false;
    }

    /// A tagged paragraph: `tag` on its own line, `text` indented below.
    fn item(&mut self, tag: &str, text: &str) {
        self.roff.control("TP", []);
        self.roff.text(md(tag));
        self.roff.text(md(text));
        self.fresh = false;
    }

    /// Lines shown as they are (commands, file contents), indented.
    fn example(&mut self, lines: &[String]) {
        if !self.fresh {
            self.roff.control("PP", []);
        }
        self.roff.control("RS", ["4"]);
        self.roff.control("nf", []);
        for line in lines {
            self.roff.text([roman(line.as_str())]);
        }
        self.roff.control("fi", []);
        self.roff.control("RE", []);
        self.fresh = false;
    }

    fn raw(&mut self, roff: Roff) {
        self.roff.extend([roff]);
        self.fresh = false;
    }

    pub fn finish(self) -> Roff {
        self.roff
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_markup() {
        assert_eq!(
            md("a {b:b} c {i:d}{ e"),
            vec![
                roman("a "),
                bold("b"),
                roman(" c "),
                italic("d"),
                roman("{"),
                roman(" e")
            ]
        );
    }

    #[test]
    fn blocks() {
        let text = [
            "<!-- a comment",
            "     of two lines -->",
            "# EXIT STATUS",
            "<!-- another -->",
            "",
            "First line",
            "and second.",
            "",
            "{b:0}",
            ": Success,",
            "  really.",
            "",
            "    p2pctl login alice",
            "    p2pctl --json status",
            "# SEE ALSO",
            "{b:p2pd}(1)",
        ]
        .join("\n");
        let sections = parse("t.md", &text).unwrap();
        assert_eq!(
            sections,
            [
                Section {
                    title: "EXIT STATUS".into(),
                    blocks: vec![
                        Block::Para("First line and second.".into()),
                        Block::Item {
                            tag: "{b:0}".into(),
                            text: "Success, really.".into()
                        },
                        Block::Example(vec![
                            "p2pctl login alice".into(),
                            "p2pctl --json status".into()
                        ]),
                    ],
                },
                Section {
                    title: "SEE ALSO".into(),
                    blocks: vec![Block::Para("{b:p2pd}(1)".into())],
                },
            ]
        );
    }

    #[test]
    fn inserts_are_blocks_of_their_own() {
        let sections = parse("t.md", "# COMMANDS\n\nIntro.\n\n{commands}\n").unwrap();
        assert_eq!(
            sections[0].blocks,
            [
                Block::Para("Intro.".into()),
                Block::Insert("commands".into())
            ]
        );
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        for (text, wanted) in [
            ("Intro.\n", "t.md:1: text before"),
            ("# A\n\n: text\n", "t.md:3: `: text` needs a tag"),
            ("# A\n\ntag\n: one\n: two\n", "t.md:3: one tag"),
            ("# A\n## B\n", "t.md:2: only `# TITLE`"),
            ("# A\n\n    code\nprose\n", "t.md:3: an example"),
            ("# A\n<!-- open\n", "t.md: a `<!--` comment"),
        ] {
            let err = parse("t.md", text).unwrap_err().to_string();
            assert!(err.starts_with(wanted), "{text:?}: {err}");
        }
    }

    #[test]
    fn roff() {
        let sections = parse(
            "t.md",
            "# A B\n\nOne.\n\nTwo {i:x}.\n\n{b:t}\n: Text.\n\n    .dot\n\n{list}\n",
        )
        .unwrap();
        let mut inserts = vec![("list", Roff::from(roman("generated")))];
        let mut writer = Writer::default();
        writer.section(&sections[0].title);
        writer.blocks(&sections[0].blocks, &mut inserts).unwrap();
        assert!(inserts.is_empty());
        let text = writer.finish().to_roff();
        assert_eq!(
            text,
            ".SH \"A B\"\nOne.\n.PP\nTwo \\fIx\\fR.\n.TP\n\\fBt\\fR\nText.\n\
             .PP\n.RS 4\n.nf\n\\&.dot\n.fi\n.RE\ngenerated\n"
        );
    }
}
