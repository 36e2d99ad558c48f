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
    devices: RwLock<BTreeMap<DevKey, Arc<Device>>>,
    ports: RwLock<Vec<Arc<TargetPort>>>,
}

impl LiveObjects {
    pub(crate) fn new(fabric: Arc<Fabric>) -> LiveObjects {
        LiveObjects {
            fabric,
            devices: RwLock::new(BTreeMap::new()),
            ports: RwLock::new(Vec::new()),
        }
    }

    /// Replace every object.
    pub(crate) fn publish(
        &self,
        devices: BTreeMap<DevKey, Arc<Device>>,
        ports: Vec<Arc<TargetPort>>,
    ) {
        *self.devices.write() = devices;
        *self.ports.write() = ports;
    }

    /// Publish device `key` (`None`: it is gone).
    pub(crate) fn set_device(&self, key: &DevKey, device: Option<Arc<Device>>) {
        let mut d = self.devices.write();
        match device {
            Some(dev) => d.insert(key.clone(), dev),
            None => d.remove(key),
        };
    }

    /// The objects as of the last apply.
    pub fn load(&self) -> Arc<Live> {
        Arc::new(Live {
            devices: (self.devices.read().iter())
                .map(|(k, d)| (k.to_string(), d.clone()))
                .collect(),
            ports: self.ports.read().clone(),
        })
    }

    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }
}
