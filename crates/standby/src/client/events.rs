//! Server-sent events from a running server (`/extensions/failoverplans/events`): a small
//! reader of the `text/event-stream` format over a streaming response.

use futures_util::StreamExt;

use super::ClientError;

/// One event: its name (`message` when the server names none), its id and its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Splits a byte stream into events.
pub struct EventReader {
    chunks: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
}

impl EventReader {
    pub fn new(response: reqwest::Response) -> EventReader {
        EventReader {
            chunks: response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Result<Option<ServerEvent>, ClientError> {
        loop {
            if let Some(event) = take_event(&mut self.buffer) {
                if event.data.is_empty() && event.event == "message" {
                    // A keep-alive comment, or a block with no data: nothing to report.
                    continue;
                }
                return Ok(Some(event));
            }
            match self.chunks.next().await {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n")),
                Some(Err(error)) => {
                    return Err(ClientError::Transport(format!(
                        "the event stream broke: {error}"
                    )));
                }
                None => return Ok(None),
            }
        }
    }
}

/// Takes the first complete event (a block ending in a blank line) out of `buffer`.
fn take_event(buffer: &mut String) -> Option<ServerEvent> {
    let end = buffer.find("\n\n")?;
    let block: String = buffer.drain(..end + 2).collect();
    let mut event = ServerEvent {
        event: "message".to_owned(),
        id: None,
        data: String::new(),
    };
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event.event = value.to_owned(),
            "id" => event.id = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    event.data = data.join("\n");
    Some(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_split_and_their_fields_read() {
        let mut buffer = String::from(
            ": keep-alive\n\nevent: session\nid: 3\ndata: {\"a\":\ndata: 1}\n\nevent: session\ndata: x",
        );
        let first = take_event(&mut buffer).unwrap();
        assert_eq!(first.data, "");
        let second = take_event(&mut buffer).unwrap();
        assert_eq!(second.event, "session");
        assert_eq!(second.id.as_deref(), Some("3"));
        assert_eq!(second.data, "{\"a\":\n1}");
        // The third is not complete yet.
        assert!(take_event(&mut buffer).is_none());
        buffer.push_str("\n\n");
        assert_eq!(take_event(&mut buffer).unwrap().data, "x");
    }
}
