//! The live engine objects as the metrics exporter walks them at scrape time
//! (docs/metrics.md): each LU under its object tree path, the target ports (through which the
//! open I_T nexuses are found) and the fabric. Published by [`crate::runtime::EngineRuntime`]
//! after every apply, so a scrape never waits for the control plane's lock and objects that
//! were deleted stop being reported.

use std::sync::Arc;

use ironlun_engine::{Device, TargetPort};
use ironlun_fabric::Fabric;
use parking_lot::RwLock;

/// One published set of live objects.
#[derive(Clone, Default)]
pub struct Live {
    /// (`core/<kind>_<hba>/<name>`, the LU), in path order.
    pub devices: Vec<(String, Arc<Device>)>,
    pub ports: Vec<Arc<TargetPort>>,
}

/// The latest [`Live`] set, shared with readers.
pub struct LiveObjects {
    fabric: Arc<Fabric>,
    now: RwLock<Arc<Live>>,
}

impl LiveObjects {
    pub(crate) fn new(fabric: Arc<Fabric>) -> LiveObjects {
        LiveObjects {
            fabric,
            now: RwLock::new(Arc::default()),
        }
    }

    pub(crate) fn publish(&self, live: Live) {
        *self.now.write() = Arc::new(live);
    }

    /// The objects as of the last apply.
    pub fn load(&self) -> Arc<Live> {
        self.now.read().clone()
    }

    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }
}
