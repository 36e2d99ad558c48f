//! The live engine objects as the metrics exporter walks them at scrape time
//! (docs/metrics.md): each LU under its object tree path, the target ports (through which the
//! open I_T nexuses are found) and the fabric. Published by [`crate::runtime::EngineRuntime`]
//! after every apply (a change of a few devices updates just those), so a scrape never waits
//! for the control plane's lock and objects that were deleted stop being reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use ironlun_engine::{Device, TargetPort};
use ironlun_fabric::Fabric;
use parking_lot::RwLock;

use crate::model::DevKey;

/// One published set of live objects.
#[derive(Clone, Default)]
pub struct Live {
    /// (`core/<kind>_<hba>/<name>`, the LU), in path order.
    pub devices: Vec<(String, Arc<Device>)>,
    pub ports: Vec<Arc<TargetPort>>,
}

/// The latest live objects, shared with readers.
pub struct LiveObjects {
    fabric: Arc<Fabric>,
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    devices: BTreeMap<DevKey, Arc<Device>>,
    ports: Vec<Arc<TargetPort>>,
    /// The last [`Live`] handed out, until the next change.
    cached: Option<Arc<Live>>,
}

impl LiveObjects {
    pub(crate) fn new(fabric: Arc<Fabric>) -> LiveObjects {
        LiveObjects {
            fabric,
            inner: RwLock::new(Inner::default()),
        }
    }

    /// Replace every object.
    pub(crate) fn publish(
        &self,
        devices: BTreeMap<DevKey, Arc<Device>>,
        ports: Vec<Arc<TargetPort>>,
    ) {
        *self.inner.write() = Inner {
            devices,
            ports,
            cached: None,
        };
    }

    /// Publish device `key` (`None`: it is gone).
    pub(crate) fn set_device(&self, key: &DevKey, device: Option<Arc<Device>>) {
        let mut i = self.inner.write();
        match device {
            Some(dev) => i.devices.insert(key.clone(), dev),
            None => i.devices.remove(key),
        };
        i.cached = None;
    }

    /// The objects as of the last apply (built once per change, then shared).
    pub fn load(&self) -> Arc<Live> {
        if let Some(l) = self.inner.read().cached.as_ref() {
            return l.clone();
        }
        let mut i = self.inner.write();
        let live = Arc::new(Live {
            devices: (i.devices.iter())
                .map(|(k, d)| (k.to_string(), d.clone()))
                .collect(),
            ports: i.ports.clone(),
        });
        i.cached = Some(live.clone());
        live
    }

    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }
}
