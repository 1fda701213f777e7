//! Paginated listings: backends answer a page and a token for the next one.

/// Fetches pages until the backend stops handing out a next-page token. `page` is called
/// first with `None`, then with each token it returned; it keeps what it wants from its page
/// and returns the next token, or `None` after the last page. The first error stops the walk.
pub fn for_each_page<E>(
    mut page: impl FnMut(Option<&str>) -> Result<Option<String>, E>,
) -> Result<(), E> {
    let mut token = page(None)?;
    while let Some(current) = token {
        token = page(Some(&current))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One page's items and the next page's token.
    type Page = Result<(Vec<u32>, Option<String>), String>;

    /// A listing of `pages`, each page naming the next by its index.
    fn listing(pages: &[&[u32]]) -> impl FnMut(Option<&str>) -> Page {
        let pages: Vec<Vec<u32>> = pages.iter().map(|p| p.to_vec()).collect();
        move |token| {
            let index: usize =
                token.map_or(Ok(0), |t| t.parse().map_err(|_| format!("bad token {t}")))?;
            let next = (index + 1 < pages.len()).then(|| (index + 1).to_string());
            Ok((pages[index].clone(), next))
        }
    }

    #[test]
    fn every_page_is_fetched_once_in_order_with_the_previous_token() {
        let mut backend = listing(&[&[1, 2], &[], &[3]]);
        let mut seen = Vec::new();
        let mut tokens = Vec::new();
        for_each_page(|token| {
            tokens.push(token.map(str::to_string));
            let (items, next) = backend(token)?;
            seen.extend(items);
            Ok::<_, String>(next)
        })
        .expect("listing");
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(tokens, [None, Some("1".into()), Some("2".into())]);
    }

    #[test]
    fn a_single_page_without_a_token_is_one_call() {
        let mut calls = 0;
        for_each_page(|_| {
            calls += 1;
            Ok::<_, String>(None)
        })
        .expect("listing");
        assert_eq!(calls, 1);
    }

    #[test]
    fn an_error_stops_the_walk_and_is_returned() {
        let mut calls = 0;
        let result = for_each_page(|token| {
            calls += 1;
            match token {
                None => Ok(Some("next".to_string())),
                Some(_) => Err("page 2 failed"),
            }
        });
        assert_eq!(result, Err("page 2 failed"));
        assert_eq!(calls, 2);
    }
}
