//! Processors: read accepted events in log order and keep derived state.
//!
//! Owns: one sub-module per use of the data: `usage` (active users and
//! messages), `graph` (address books), `links` (partner accounts), `abuse`
//! (rules, actions, security records), `audiences` (business contacts by day).
//! Never: writes to an output. Whatever leaves the process goes through
//! `gate/` first.

pub mod abuse;
pub mod audiences;
pub mod graph;
pub mod links;
pub mod usage;

/// Edits an exactly-sized boxed slice through a `Vec` and boxes the result
/// again at its new length: taking the box into a vector does not copy, and
/// boxing it again gives back only the room the edit left over. For state
/// held in many small lists (first writes, an audience day's members),
/// where a `Vec`'s spare room would be paid for each.
pub(crate) fn edit_exact<T, R>(slice: &mut Box<[T]>, edit: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let mut items = std::mem::take(slice).into_vec();
    let result = edit(&mut items);
    *slice = items.into_boxed_slice();
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_edited_slice_is_boxed_at_its_new_length() {
        let mut slice: Box<[u32]> = vec![1, 3].into_boxed_slice();
        let at = super::edit_exact(&mut slice, |items| {
            items.insert(1, 2);
            items.len()
        });
        assert_eq!((&*slice, at), (&[1, 2, 3][..], 3));
        super::edit_exact(&mut slice, |items| items.retain(|&n| n != 2));
        assert_eq!(&*slice, &[1, 3]);
    }
}
