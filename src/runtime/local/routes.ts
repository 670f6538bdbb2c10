// Which revision each deployment's endpoint sends traffic to. A switch is one
// map assignment, so every request sees either the old route or the new one.
import type { TrafficShare } from "../driver.js";

export interface Route {
  deploymentUid: string;
  workspace: string;
  deploymentName: string;
  /** The serving revision; during a split, the one that served before it. */
  revision: number;
  /** Set while a split is in force: each request goes to one of these by weight (routes persisted before splits have none). */
  shares?: TrafficShare[];
}

export class RouteTable {
  private readonly byUid = new Map<string, Route>();
  private readonly byPath = new Map<string, Route>();

  set(route: Route): void {
    this.remove(route.deploymentUid);
    const path = pathKey(route.workspace, route.deploymentName);
    // A name reused by a newer deployment takes the path over.
    const previous = this.byPath.get(path);
    if (previous) this.byUid.delete(previous.deploymentUid);
    this.byUid.set(route.deploymentUid, route);
    this.byPath.set(path, route);
  }

  remove(uid: string): void {
    const route = this.byUid.get(uid);
    if (!route) return;
    this.byUid.delete(uid);
    const path = pathKey(route.workspace, route.deploymentName);
    if (this.byPath.get(path) === route) this.byPath.delete(path);
  }

  ofDeployment(uid: string): Route | undefined {
    return this.byUid.get(uid);
  }

  lookup(workspace: string, deploymentName: string): Route | undefined {
    return this.byPath.get(pathKey(workspace, deploymentName));
  }

  list(): Route[] {
    return [...this.byUid.values()];
  }
}

const pathKey = (workspace: string, name: string) => `${workspace}/${name}`;
