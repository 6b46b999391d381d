//! Distances on the Earth's surface, for "within N km of here".

/// The Earth's mean radius in km.
const EARTH_KM: f64 = 6371.0088;

/// Great-circle distance between two (latitude, longitude) points in km.
pub fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    km_of_haversine(h)
}

/// A point as a vector on the unit sphere, worked out once: comparing two
/// then takes no trigonometry, where [`haversine_km`] takes five functions
/// (a search compares its centre with every candidate group).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OnSphere([f64; 3]);

impl OnSphere {
    pub fn of((lat, lon): (f64, f64)) -> OnSphere {
        let (lat, lon) = (lat.to_radians(), lon.to_radians());
        OnSphere([lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()])
    }

    /// The haversine of the angle between the two points: a quarter of the
    /// squared chord, which grows with the distance (see [`km_of_haversine`]).
    pub fn haversine(&self, other: &OnSphere) -> f64 {
        let [a, b, c] = self.0;
        let [x, y, z] = other.0;
        ((a - x).powi(2) + (b - y).powi(2) + (c - z).powi(2)) / 4.0
    }
}

/// The distance in km whose haversine is `h`.
pub fn km_of_haversine(h: f64) -> f64 {
    2.0 * EARTH_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// The haversine of a distance in km, to compare with [`OnSphere::haversine`].
pub fn haversine_of_km(km: f64) -> f64 {
    (km.min(EARTH_KM * std::f64::consts::PI) / (2.0 * EARTH_KM))
        .sin()
        .powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_on_the_sphere_give_the_haversine_distance() {
        let nottingham = (52.9548, -1.1581);
        for (other, km) in [
            ((52.9225, -1.4746), 21.5),       // Derby
            ((51.5072, -0.1276), 175.6),      // London
            ((-33.8688, 151.2093), 17_000.0), // Sydney, nearly opposite
            (nottingham, 0.0),
            ((52.9549, -1.1581), 0.011), // eleven metres north
        ] {
            let h = OnSphere::of(nottingham).haversine(&OnSphere::of(other));
            let by_vectors = km_of_haversine(h);
            let by_formula = haversine_km(nottingham, other);
            assert!(
                (by_vectors - by_formula).abs() < 1e-6,
                "{other:?}: {by_vectors} against {by_formula}"
            );
            assert!(
                (by_formula - km).abs() <= km * 0.01 + 0.001,
                "{other:?}: {by_formula}"
            );
            // Within a distance exactly when the haversines compare so.
            assert!(h <= haversine_of_km(by_formula + 0.001));
            assert!(by_formula < 0.01 || h > haversine_of_km(by_formula - 0.001));
        }
    }
}
