/** Model zoo: importing this registers every family and preset. */
import './reference';
import './restormer';
import './mprnet';
import './swinir';
import './edt';

export * from './module';
export * from './layers';
export * from './hooks';
export * from './model';
export * from './registry';
export * from './weights';
export * from './spec';
