//! The task DAG (petgraph): declaration order with cycle errors, and the instance graph
//! the scheduler walks.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::spec::error::SpecError;
use crate::spec::raw::Declaration;
use crate::spec::TaskInstance;

/// Orders declarations so each comes after the tasks it reads; ties keep file order, so the
/// order is deterministic. A reference to an unknown name is left for expansion to report.
pub fn order_declarations(declarations: &[Declaration]) -> Result<Vec<usize>, SpecError> {
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..declarations.len()).map(|i| graph.add_node(i)).collect();
    for (index, declaration) in declarations.iter().enumerate() {
        for (_, target) in &declaration.inputs {
            let base = target.value.split('[').next().unwrap_or_default();
            if let Some(upstream) = declarations.iter().position(|d| d.name.value == base) {
                graph.update_edge(nodes[upstream], nodes[index], ());
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph) {
        let names: Vec<&str> = cycle.iter().map(|&i| declarations[i].name.value.as_str()).collect();
        let first = &declarations[cycle[0]];
        let mut path = names.clone();
        path.push(names[0]);
        return Err(SpecError::at(
            &first.name.location,
            Some(format!("tasks.{}.inputs", first.name.value)),
            format!("dependency cycle: {}", path.join(" -> ")),
        )
        .note("a task cannot (even indirectly) read its own output"));
    }
    Ok(kahn(&graph))
}

/// A cycle as a list of declaration indices in dependency order, if any.
fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    let component = tarjan_scc(graph)
        .into_iter()
        .filter(|scc| scc.len() > 1 || graph.contains_edge(scc[0], scc[0]))
        .min_by_key(|scc| scc.iter().map(|n| graph[*n]).min())?;
    let members: BTreeSet<NodeIndex> = component.iter().copied().collect();
    // Walk edges inside the component from its first-declared member until we return.
    let start = *members.iter().min_by_key(|n| graph[**n])?;
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = graph
            .neighbors_directed(current, Direction::Outgoing)
            .filter(|n| members.contains(n))
            .min_by_key(|n| (!path.contains(n) && *n != start, graph[*n]))?;
        if next == start || path.contains(&next) {
            let from = path.iter().position(|n| *n == next).unwrap_or(0);
            return Some(path[from..].iter().map(|n| graph[*n]).collect());
        }
        path.push(next);
        current = next;
    }
}

/// Kahn's algorithm taking the lowest ready index first.
fn kahn<N: Copy + Into<usize>>(graph: &DiGraph<N, ()>) -> Vec<usize> {
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|n| graph.neighbors_directed(n, Direction::Incoming).count())
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = graph
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .map(|n| Reverse(n.index()))
        .collect();
    let mut order = Vec::with_capacity(indegree.len());
    while let Some(Reverse(index)) = ready.pop() {
        order.push(graph[NodeIndex::new(index)].into());
        for next in graph.neighbors_directed(NodeIndex::new(index), Direction::Outgoing) {
            indegree[next.index()] -= 1;
            if indegree[next.index()] == 0 {
                ready.push(Reverse(next.index()));
            }
        }
    }
    order
}

/// The instance DAG: an edge from each input to the task that reads it.
pub struct TaskGraph {
    graph: DiGraph<usize, ()>,
}

impl TaskGraph {
    pub fn new(tasks: &[TaskInstance]) -> Self {
        let mut graph = DiGraph::new();
        for index in 0..tasks.len() {
            graph.add_node(index);
        }
        for (index, task) in tasks.iter().enumerate() {
            for &upstream in task.inputs.values() {
                graph.update_edge(NodeIndex::new(upstream), NodeIndex::new(index), ());
            }
        }
        Self { graph }
    }

    pub fn topological_order(&self) -> Vec<usize> {
        kahn(&self.graph)
    }

    pub fn dependencies(&self, task: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(task), Direction::Incoming)
            .map(|n| n.index())
    }

    pub fn dependents(&self, task: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(task), Direction::Outgoing)
            .map(|n| n.index())
    }

    /// The given tasks and everything they (transitively) read.
    pub fn with_dependencies(&self, roots: &[usize]) -> BTreeSet<usize> {
        self.reach(roots, Direction::Incoming)
    }

    /// The given tasks and everything that (transitively) reads them.
    pub fn with_dependents(&self, roots: &[usize]) -> BTreeSet<usize> {
        self.reach(roots, Direction::Outgoing)
    }

    fn reach(&self, roots: &[usize], direction: Direction) -> BTreeSet<usize> {
        let mut reached = BTreeSet::new();
        let mut stack = roots.to_vec();
        while let Some(task) = stack.pop() {
            if reached.insert(task) {
                stack.extend(
                    self.graph
                        .neighbors_directed(NodeIndex::new(task), direction)
                        .map(|n| n.index()),
                );
            }
        }
        reached
    }
}
