//! The task DAG (petgraph): a deterministic order with cycle detection, and the instance
//! graph the scheduler walks. It knows nodes only by index and their inputs ([`Node`]).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

/// A node of the graph: the indices of the nodes it reads.
pub trait Node {
    fn upstream(&self) -> impl Iterator<Item = usize> + '_;
}

/// Orders nodes so each comes after the nodes it reads (`upstream[i]` lists node `i`'s
/// inputs); ties keep index order, so the order is deterministic. A cycle is returned as its
/// members in dependency order, starting from the lowest index.
pub fn order(upstream: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..upstream.len()).map(|i| graph.add_node(i)).collect();
    for (index, inputs) in upstream.iter().enumerate() {
        for &input in inputs {
            graph.update_edge(nodes[input], nodes[index], ());
        }
    }
    match find_cycle(&graph) {
        Some(cycle) => Err(cycle),
        None => Ok(kahn(&graph)),
    }
}

/// A cycle as a list of node indices in dependency order, if any.
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
    pub fn new<N: Node>(tasks: &[N]) -> Self {
        let mut graph = DiGraph::new();
        for index in 0..tasks.len() {
            graph.add_node(index);
        }
        for (index, task) in tasks.iter().enumerate() {
            for upstream in task.upstream() {
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
