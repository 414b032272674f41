//! The module tree as PyTorch prints it (`print(model)`).
//!
//! `render` follows `torch.nn.Module.__repr__` and `ModuleList.__repr__` exactly: one
//! `(name): Class(extra)` line per child, indented by two spaces per level, and runs of
//! identical list items collapsed to `(0-5): 6 x TransformerBlock(…)`.

/// One module: class name, `extra_repr`, children in registration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleNode {
    pub class: String,
    pub extra: String,
    pub children: Vec<(String, ModuleNode)>,
    /// A `ModuleList`: identical consecutive children are collapsed when printed.
    pub is_list: bool,
}

impl ModuleNode {
    pub fn leaf(class: impl Into<String>, extra: impl Into<String>) -> ModuleNode {
        ModuleNode {
            class: class.into(),
            extra: extra.into(),
            children: vec![],
            is_list: false,
        }
    }

    pub fn new(class: impl Into<String>, children: Vec<(&str, ModuleNode)>) -> ModuleNode {
        ModuleNode {
            class: class.into(),
            extra: String::new(),
            children: children.into_iter().map(|(n, m)| (n.to_string(), m)).collect(),
            is_list: false,
        }
    }

    pub fn list(items: Vec<ModuleNode>) -> ModuleNode {
        ModuleNode {
            class: "ModuleList".into(),
            extra: String::new(),
            children: items.into_iter().enumerate().map(|(i, m)| (i.to_string(), m)).collect(),
            is_list: true,
        }
    }

    /// The text `print(model)` shows.
    pub fn render(&self) -> String {
        if self.is_list {
            return self.render_list();
        }
        let extra_lines: Vec<String> = if self.extra.is_empty() {
            vec![]
        } else {
            self.extra.lines().map(String::from).collect()
        };
        let child_lines: Vec<String> = self
            .children
            .iter()
            .map(|(name, m)| format!("({name}): {}", add_indent(&m.render(), 2)))
            .collect();
        let mut s = format!("{}(", self.class);
        if extra_lines.len() == 1 && child_lines.is_empty() {
            s.push_str(&extra_lines[0]);
        } else if !extra_lines.is_empty() || !child_lines.is_empty() {
            let lines: Vec<String> = extra_lines.into_iter().chain(child_lines).collect();
            s.push_str("\n  ");
            s.push_str(&lines.join("\n  "));
            s.push('\n');
        }
        s.push(')');
        s
    }

    fn render_list(&self) -> String {
        if self.children.is_empty() {
            return format!("{}()", self.class);
        }
        let reprs: Vec<String> = self.children.iter().map(|(_, m)| m.render()).collect();
        let mut blocks: Vec<(usize, usize, &String)> = vec![(0, 0, &reprs[0])];
        for (i, r) in reprs.iter().enumerate().skip(1) {
            let last = blocks.last_mut().expect("non-empty");
            if r == last.2 {
                last.1 = i;
            } else {
                blocks.push((i, i, r));
            }
        }
        let lines: Vec<String> = blocks
            .into_iter()
            .map(|(start, end, r)| {
                let local = if start == end {
                    format!("({start}): {r}")
                } else {
                    format!("({start}-{end}): {} x {r}", end - start + 1)
                };
                add_indent(&local, 2)
            })
            .collect();
        format!("{}(\n  {}\n)", self.class, lines.join("\n  "))
    }
}

/// `torch.nn.modules.module._addindent`.
fn add_indent(s: &str, n: usize) -> String {
    let mut lines = s.split('\n');
    let first = lines.next().unwrap_or("");
    let rest: Vec<String> = lines.map(|l| format!("{}{l}", " ".repeat(n))).collect();
    if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}\n{}", rest.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_pytorch() {
        let lin = || ModuleNode::leaf("Linear", "in_features=2, out_features=2, bias=True");
        let block = |extra: &str| ModuleNode::new("Block", vec![("fc", ModuleNode::leaf("Linear", extra))]);
        let list = ModuleNode::list(vec![block("a"), block("a"), block("a"), block("b")]);
        let root = ModuleNode::new(
            "Net",
            vec![("layers", list), ("head", lin()), ("act", ModuleNode::leaf("ReLU", ""))],
        );
        let want = "Net(\n  (layers): ModuleList(\n    (0-2): 3 x Block(\n      (fc): Linear(a)\n    )\n    (3): Block(\n      (fc): Linear(b)\n    )\n  )\n  (head): Linear(in_features=2, out_features=2, bias=True)\n  (act): ReLU()\n)";
        assert_eq!(root.render(), want);
        assert_eq!(ModuleNode::list(vec![]).render(), "ModuleList()");
    }
}
