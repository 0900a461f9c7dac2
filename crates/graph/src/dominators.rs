//! Dominator tree (Semi-NCA) and retained sizes.
//!
//! Work happens on DFS preorder numbers, so every array is a plain `Vec<u32>`
//! indexed by number; the DFS and the path compression are iterative.

use heapscope_heap::{ObjId, NO_OBJ};

use crate::Graph;

const NONE: u32 = u32::MAX;

/// The dominator tree of a [`Graph`] and the retained size of every object.
pub struct Dominators {
    /// Immediate dominator of each node (super-root included, whose idom is
    /// itself); `NONE` for objects no root reaches.
    idom: Vec<u32>,
    /// Retained bytes of each node; the super-root's is the reachable total.
    retained: Vec<u64>,
    /// Reachable nodes in DFS preorder (the super-root first).
    preorder: Vec<u32>,
    /// Dominator-tree children, as CSR over node ids.
    child_offsets: Vec<u32>,
    children: Vec<u32>,
    root: u32,
}

impl Dominators {
    pub fn compute(g: &Graph<'_>) -> Dominators {
        let nodes = g.node_count();
        let root = g.root();

        // 1. Iterative DFS from the super-root: preorder numbers and DFS parents.
        let mut pre = vec![NONE; nodes];
        let mut vertex: Vec<u32> = Vec::with_capacity(nodes);
        let mut parent: Vec<u32> = Vec::with_capacity(nodes);
        {
            let mut stack: Vec<(u32, u32)> = vec![(root, NONE)];
            let mut succ = Vec::new();
            while let Some((v, from)) = stack.pop() {
                if pre[v as usize] != NONE {
                    continue;
                }
                pre[v as usize] = vertex.len() as u32;
                vertex.push(v);
                parent.push(if from == NONE { 0 } else { pre[from as usize] });
                succ.clear();
                g.for_each_succ(v, |w| {
                    if pre[w as usize] == NONE {
                        succ.push(w)
                    }
                });
                // Reversed so that successors are visited in reference order.
                stack.extend(succ.iter().rev().map(|&w| (w, v)));
            }
        }
        let count = vertex.len();

        // 2. Semidominators, in reverse preorder, with path compression.
        let mut semi: Vec<u32> = (0..count as u32).collect();
        let mut label: Vec<u32> = (0..count as u32).collect();
        let mut ancestor = vec![NONE; count];
        let mut path = Vec::new();
        for i in (1..count).rev() {
            let w = vertex[i];
            let mut s = semi[i];
            for &v in g.preds(w) {
                let pv = pre[v as usize];
                if pv == NONE {
                    continue; // an unreachable predecessor
                }
                let u = eval(pv, &mut ancestor, &mut label, &semi, &mut path);
                s = s.min(semi[u as usize]);
            }
            semi[i] = s;
            ancestor[i] = parent[i];
        }
        drop(ancestor);
        drop(label);

        // 3. Immediate dominators: the nearest common ancestor step of Semi-NCA.
        let mut idom_pre = parent;
        for i in 1..count {
            let mut d = idom_pre[i];
            while d > semi[i] {
                d = idom_pre[d as usize];
            }
            idom_pre[i] = d;
        }
        drop(semi);

        let mut idom = vec![NONE; nodes];
        for i in 0..count {
            idom[vertex[i] as usize] = vertex[idom_pre[i] as usize];
        }

        // 4. Retained sizes: children before parents, i.e. reverse preorder.
        let mut retained_pre: Vec<u64> = vertex
            .iter()
            .map(|&v| if v == root { 0 } else { g.shallow(v) })
            .collect();
        for i in (1..count).rev() {
            let p = idom_pre[i] as usize;
            retained_pre[p] = retained_pre[p].saturating_add(retained_pre[i]);
        }
        let mut retained = vec![0u64; nodes];
        for i in 0..count {
            retained[vertex[i] as usize] = retained_pre[i];
        }

        // 5. Children lists (in preorder, so each list is in DFS order).
        let mut counts = vec![0u32; nodes + 1];
        for &v in &vertex[1..] {
            counts[idom[v as usize] as usize + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let mut children = vec![0u32; count.saturating_sub(1)];
        let mut fill = counts.clone();
        for &v in &vertex[1..] {
            let p = idom[v as usize] as usize;
            children[fill[p] as usize] = v;
            fill[p] += 1;
        }

        Dominators {
            idom,
            retained,
            preorder: vertex,
            child_offsets: counts,
            children,
            root,
        }
    }

    /// The super-root.
    pub fn root(&self) -> u32 {
        self.root
    }

    pub fn is_reachable(&self, v: u32) -> bool {
        self.idom[v as usize] != NONE
    }

    /// Immediate dominator: `Some(root())` for objects only the super-root
    /// dominates; `None` for unreachable objects and the super-root.
    pub fn idom(&self, v: u32) -> Option<u32> {
        let d = self.idom[v as usize];
        (d != NONE && v != self.root).then_some(d)
    }

    /// Bytes that would be freed if `v` were gone (0 if unreachable).
    pub fn retained(&self, v: u32) -> u64 {
        self.retained[v as usize]
    }

    /// Total bytes reachable from the roots.
    pub fn reachable_bytes(&self) -> u64 {
        self.retained[self.root as usize]
    }

    /// Reachable nodes in DFS preorder, the super-root first: a node always
    /// comes after its dominator.
    pub fn preorder(&self) -> &[u32] {
        &self.preorder
    }

    /// Objects `v` immediately dominates.
    pub fn children(&self, v: u32) -> &[u32] {
        let v = v as usize;
        &self.children[self.child_offsets[v] as usize..self.child_offsets[v + 1] as usize]
    }

    /// The dominator chain of `v`, from `v` up to (not including) the super-root.
    pub fn chain(&self, v: u32) -> Vec<ObjId> {
        let mut out = Vec::new();
        let mut x = v;
        while x != self.root && self.idom[x as usize] != NONE {
            out.push(x);
            x = self.idom[x as usize];
        }
        out
    }

    /// Objects no root reaches.
    pub fn unreachable(&self) -> impl Iterator<Item = ObjId> + '_ {
        (0..self.root).filter(|&v| self.idom[v as usize] == NONE)
    }
}

/// Min-semi label on the compressed path from `v` to its linked ancestor.
#[inline]
fn eval(v: u32, ancestor: &mut [u32], label: &mut [u32], semi: &[u32], path: &mut Vec<u32>) -> u32 {
    if ancestor[v as usize] == NONE {
        return v;
    }
    // Collect the path whose links will be compressed, then compress it top-down.
    path.clear();
    let mut x = v;
    while ancestor[ancestor[x as usize] as usize] != NONE {
        path.push(x);
        x = ancestor[x as usize];
    }
    while let Some(y) = path.pop() {
        let a = ancestor[y as usize] as usize;
        if semi[label[a] as usize] < semi[label[y as usize] as usize] {
            label[y as usize] = label[a];
        }
        ancestor[y as usize] = ancestor[a];
    }
    label[v as usize]
}

/// Unused marker so that `NO_OBJ` and `NONE` stay the same value.
const _: () = assert!(NO_OBJ == NONE);
