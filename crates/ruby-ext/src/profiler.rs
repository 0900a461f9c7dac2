use magnus::{Error, RModule, Ruby};

pub fn init(_ruby: &Ruby, _native: RModule) -> Result<(), Error> {
    Ok(())
}
